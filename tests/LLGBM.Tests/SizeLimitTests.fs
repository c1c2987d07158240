/// Sizes that cannot fit: configs whose parameters exceed the memory, inputs longer than max_position_embeddings, and
/// config fields that make no sense. Each is a one-line error naming the file or input and the limit, before anything
/// large is allocated.
module LLGBM.Tests.SizeLimitTests

open System
open System.Globalization
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Evaluation
open LLGBM.Model
open LLGBM.Tasks
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestCli
open LLGBM.Tests.EvaluationFixtures
open LLGBM.Tests.SafetensorsTests.Kit

/// A micro checkpoint in root/name whose config.json has `edit` applied.
let private editedMicro root name (edit: JsonObject -> unit) =
    let dir = Path.Combine(root, name)
    let (code, _, err) = llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; dir ]
    Expect.equal code 0 err
    let path = Path.Combine(dir, "config.json")
    let json = JsonNode.Parse(File.ReadAllText path).AsObject()
    edit json
    File.WriteAllText(path, json.ToJsonString())
    dir

/// The number of elements of a model's parameters, counted on the allocated model.
let private allocatedParameters (config: Qwen2Config) =
    use model = new Qwen2ForCausalLM(config)
    model.parameters () |> Seq.sumBy (fun p -> p.numel ())

let private configOf (dir: string) = Path.Combine(dir, "config.json")

let private invariant (n: int64) =
    n.ToString("N0", CultureInfo.InvariantCulture)

[<Tests>]
let tests =
    testList "SizeLimits" [
        test "ParameterCount equals the number of elements the model allocates" {
            let explicitHeadTied =
                withFields [ "head_dim", jnode 16; "tie_word_embeddings", jnode true ] Qwen2Presets.Micro

            for config in [ Qwen2Presets.Micro; Qwen2Presets.Tiny; Qwen2Presets.TinyB; explicitHeadTied ] do
                Expect.equal config.ParameterCount (allocatedParameters config) $"{config}"
        }

        test "forward refuses vocab_size 2^31 − 1 before allocating, naming config.json, the count and the memory" {
            withTempDir (fun root ->
                let dir =
                    editedMicro root "huge" (fun json -> json["vocab_size"] <- JsonValue.Create Int32.MaxValue)
                // Only the embedding and the (untied) head grow with the vocabulary: 2 · V · H of them.
                let micro = allocatedParameters Qwen2Presets.Micro
                let expected = micro - 2L * 64L * 32L + 2L * int64 Int32.MaxValue * 32L
                let (code, out, err) = llgbm [ "forward"; "--model"; dir; "--ids"; "1,2" ]
                Expect.equal code 2 err
                Expect.equal out "" "nothing printed"
                let line = err.TrimEnd()
                Expect.isFalse (line.Contains '\n') "one line"

                Expect.stringStarts
                    line
                    $"error: {configOf dir}: the architecture has {invariant expected} parameters (vocab_size 2147483647,"
                    "names the file and the count"

                Expect.stringContains line $"{float (expected * 4L) / 1e9:F1} GB as Float32" "the bytes"
                Expect.stringContains line "of memory available" "the memory")
        }

        test "the model constructor refuses a config that cannot fit before allocating" {
            let huge = withFields [ "vocab_size", jnode Int32.MaxValue ] Qwen2Presets.Micro

            let message =
                errorMessage<LlgbmException>(fun () -> new Qwen2ForCausalLM(huge) |> ignore)

            Expect.stringStarts
                message
                $"Qwen2 config: the architecture has {invariant huge.ParameterCount} parameters"
                "message"
        }

        test "a config whose sizes imply more than 2^63 parameters is refused" {
            let message =
                errorMessage<LlgbmException>(fun () ->
                    withFields
                        [
                            "vocab_size", jnode Int32.MaxValue
                            "hidden_size", jnode 2147483640
                            "intermediate_size", jnode Int32.MaxValue
                        ]
                        Qwen2Presets.Micro
                    |> ignore)

            Expect.stringStarts message "config.json: the sizes imply more than 2^63 parameters" "message"
        }

        test "config fields out of range are refused naming config.json and the field" {
            withTempDir (fun root ->
                for (field, value, expected) in
                    [
                        "max_position_embeddings", "0", "max_position_embeddings must be positive, found 0."
                        "num_attention_heads", "6", "hidden_size (32) must be a multiple of num_attention_heads (6)"
                        "hidden_size", "-32", "hidden_size must be positive, found -32."
                        "rope_theta", "1e999", "rope_theta must be a positive finite number"
                    ] do
                    let dir = editedMicro root field (fun json -> json[field] <- JsonNode.Parse value)
                    let (code, _, err) = llgbm [ "forward"; "--model"; dir; "--ids"; "1" ]
                    Expect.equal code 2 err

                    Expect.stringStarts (err.TrimEnd()) $"error: {configOf dir}: {expected}" field)
        }

        test "forward refuses more --ids than max_position_embeddings, naming the input and the limit" {
            withTempDir (fun root ->
                let dir = editedMicro root "m" ignore
                let ids = String.Join(",", Array.init 257 (fun i -> string (i % 64)))
                let (code, out, err) = llgbm [ "forward"; "--model"; dir; "--ids"; ids ]
                Expect.equal code 2 err
                Expect.equal out "" "nothing printed"

                Expect.equal
                    (err.TrimEnd())
                    $"error: --ids: 257 token ids, more than the max_position_embeddings 256 of {configOf dir}."
                    "error"

                let fits = String.Join(",", Array.init 256 (fun i -> string (i % 64)))
                let (code, _, err) = llgbm [ "forward"; "--model"; dir; "--ids"; fits ]
                Expect.equal code 0 err)
        }

        test "Forward refuses a sequence longer than max_position_embeddings, cached positions included" {
            use model = micro 3L
            use _ = torch.no_grad ()
            use ids = randomIds 1L 64 1 257

            Expect.equal
                (errorMessage<LlgbmException>(fun () -> model.Forward ids |> ignore))
                ("Forward: the sequence has 257 positions (0 cached, 257 new), more than the max_position_embeddings 256 of the model's config.json; "
                 + "shorten the input.")
                "too long"

            use cache = new KvCache(model.Config.NumHiddenLayers)
            use first = randomIds 2L 64 1 200
            use _ = model.Forward(first, ForwardOptions(Cache = cache))
            use next = randomIds 3L 64 1 57

            Expect.equal
                (errorMessage<LlgbmException>(fun () -> model.Forward(next, ForwardOptions(Cache = cache)) |> ignore))
                ("Forward: the sequence has 257 positions (200 cached, 57 new), more than the max_position_embeddings 256 of the model's "
                 + "config.json; shorten the input.")
                "cache counted"
        }

        test "evaluation refuses a test example longer than max_position_embeddings, naming the task and the example" {
            use model = micro 5L
            let tok = TestTokenizer.tokenizer
            let long = String('a', 300)

            let mc =
                task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine [
                    choice "1+1=" [ "2"; "3" ] "A"
                    choice long [ "2"; "3" ] "B"
                ]

            let message =
                errorMessage<LlgbmException>(fun () ->
                    TaskEvaluator.Evaluate(evaluated model, tok, mc, EvaluationOptions(BatchSize = 2))
                    |> ignore)

            Expect.stringStarts
                message
                "Task mc, test example 1: the prompt and its longest choice take "
                "mc: names the example"

            Expect.stringEnds
                message
                "more than the max_position_embeddings 256 of the model's config.json; shorten the example."
                "mc: the limit"

            let gen =
                task "gen" TaskKind.Generation AnswerExtraction.FirstLine [ answered long "x"; answered "1+1=" "2" ]

            let message =
                errorMessage<LlgbmException>(fun () ->
                    TaskEvaluator.Evaluate(evaluated model, tok, gen, EvaluationOptions(MaxNewTokens = Nullable 3))
                    |> ignore)

            Expect.stringStarts
                message
                "Task gen, test example 0: the prompt and up to 3 new tokens take "
                "gen: names the example"
        }
    ]
