module LLGBM.Tests.Qwen2ConfigTests

open System.Text.Json.Nodes
open Expecto
open LLGBM
open LLGBM.Model
open LLGBM.Tests.TestModels

let private parse (text: string) =
    Qwen2Config.FromJson(JsonNode.Parse(text).AsObject())

/// The Qwen2.5-0.5B-Instruct config.json fields that matter, as published.
let private qwen25HalfB =
    """{"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
        "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
        "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14,
        "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.43.1",
        "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}"""

let private expectError (text: string) (fragment: string) =
    let message = errorMessage<LlgbmException>(fun () -> parse text |> ignore)
    Expect.stringContains message fragment "the message names the field"

[<Tests>]
let tests =
    testList "Qwen2Config" [
        test "FromJson reads a Qwen2.5 config.json, ignoring unknown keys" {
            let c = parse qwen25HalfB
            Expect.equal (c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers) (896, 4864, 24) "sizes"
            Expect.equal (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim) (14, 2, 64) "heads"
            Expect.equal c.RopeTheta 1e6 "rope_theta at the top level"
            Expect.equal c.RmsNormEps 1e-6 "eps"
            Expect.isTrue c.TieWordEmbeddings "tied"
            Expect.equal c.VocabSize 151936 "vocab"
        }
        test "FromJson reads rope_theta nested in rope_parameters" {
            let text =
                qwen25HalfB.Replace(
                    "\"rope_theta\": 1000000.0,",
                    "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"},"
                )

            Expect.equal (parse text).RopeTheta 5e5 "nested"
        }
        test "FromJson honours an explicit head_dim" {
            let c =
                parse (
                    qwen25HalfB.Replace(
                        "\"num_attention_heads\": 14,",
                        "\"num_attention_heads\": 14, \"head_dim\": 128,"
                    )
                )

            Expect.equal c.HeadDim 128 "explicit"
        }
        test "ToJson then FromJson is the identity" {
            let c = parse qwen25HalfB
            let again = Qwen2Config.FromJson(JsonNode.Parse(c.ToJsonString()).AsObject())
            Expect.equal again c "round trip"
        }
        test "FromJson rejects bad fields with the field named" {
            expectError (qwen25HalfB.Replace("\"hidden_size\": 896,", "")) "hidden_size"
            expectError (qwen25HalfB.Replace("\"hidden_size\": 896", "\"hidden_size\": \"big\"")) "hidden_size"

            expectError
                (qwen25HalfB.Replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"))
                "num_key_value_heads"

            expectError (qwen25HalfB.Replace("\"model_type\": \"qwen2\"", "\"model_type\": \"llama\"")) "model_type"

            expectError
                (qwen25HalfB.Replace("\"use_sliding_window\": false", "\"use_sliding_window\": true"))
                "use_sliding_window"

            expectError (qwen25HalfB.Replace("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"")) "hidden_act"
            expectError (qwen25HalfB.Replace("\"vocab_size\": 151936", "\"vocab_size\": 0")) "vocab_size"
        }
        test "Load names the file when it is not JSON" {
            let path = System.IO.Path.GetTempFileName()
            System.IO.File.WriteAllText(path, "{ not json")

            let message =
                errorMessage<LlgbmException>(fun () -> Qwen2Config.Load path |> ignore)

            Expect.stringContains message path "file named"
            System.IO.File.Delete path
        }
    ]
