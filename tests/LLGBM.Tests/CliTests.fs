module LLGBM.Tests.CliTests

open System.IO
open System.Text.Json
open Expecto
open LLGBM.Cli
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestCli
open LLGBM.Tests.SafetensorsTests.Kit


[<Tests>]
let tests =
    testList "Cli" [
        test "base init writes a checkpoint that forward --json evaluates like the library" {
            withTempDir (fun dir ->
                let (code, _, err) =
                    llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; dir; "--seed"; "3" ]

                Expect.equal code 0 err

                let (code, json, err) =
                    llgbm [ "forward"; "--model"; dir; "--ids"; "5,1,60"; "--json" ]

                Expect.equal code 0 err
                use doc = JsonDocument.Parse json

                let matrix (name: string) = [|
                    for row in doc.RootElement.GetProperty(name).EnumerateArray() ->
                        [| for v in row.EnumerateArray() -> v.GetSingle() |]
                |]

                let hidden = matrix "hidden_last"
                let logits = matrix "logits"
                Expect.equal (hidden.Length, hidden[0].Length) (3, 32) "hidden_last [T, H]"
                Expect.equal (logits.Length, logits[0].Length) (3, 64) "logits [T, V]"
                use model = Qwen2ForCausalLM.FromPretrained dir
                use out = model.Forward(longs [ 1L; 3L ] [ 5L; 1L; 60L ])
                let expected = out.Logits[0].data<float32>().ToArray()
                Expect.sequenceEqual (Array.concat logits) expected "the printed logits are the model's")
        }
        test "forward --adapter applies a PEFT adapter directory like the library's functional LoRA" {
            withTempDir (fun dir ->
                let (code, _, err) =
                    llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; dir; "--seed"; "3" ]

                Expect.equal code 0 err
                let adapterDir = Path.Combine(dir, "adapter")

                use lora =
                    randomLora LLGBM.Checkpoints.Qwen2Presets.Micro 9L 3L 0.3 1.5 [
                        0, "q_proj"
                        1, "v_proj"
                        1, "down_proj"
                    ]

                PeftAdapter.Save(adapterDir, LoraConfig(Rank = 3, Alpha = 4.5), lora)

                let logits (args: string list) =
                    let (code, json, err) =
                        llgbm ([ "forward"; "--model"; dir; "--ids"; "5,1,60"; "--json" ] @ args)

                    Expect.equal code 0 err
                    use doc = JsonDocument.Parse json

                    [|
                        for row in doc.RootElement.GetProperty("logits").EnumerateArray() do
                            for v in row.EnumerateArray() -> v.GetSingle()
                    |]

                let adapted = logits [ "--adapter"; adapterDir ]
                let plain = logits []
                use model = Qwen2ForCausalLM.FromPretrained dir

                use out =
                    model.Forward(longs [ 1L; 3L ] [ 5L; 1L; 60L ], ForwardOptions(Lora = lora))

                let expected = out.Logits[0].data<float32>().ToArray()

                let gap (a: float32[]) (b: float32[]) =
                    Array.map2 (fun x y -> abs (x - y)) a b |> Array.max

                Expect.isLessThan (gap adapted expected) 1e-5f "the printed logits are the adapted model's"
                Expect.isGreaterThan (gap adapted plain) 1e-2f "and differ from the base's"
                File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"), "{\"fan_in_fan_out\": true}")

                let (code, _, err) =
                    llgbm [ "forward"; "--model"; dir; "--ids"; "5"; "--adapter"; adapterDir ]

                Expect.equal code 2 "a bad adapter is an input error"
                Expect.stringContains err "fan_in_fan_out" "names the field")
        }
        test "base init refuses to overwrite without --force" {
            withTempDir (fun dir ->
                let (code, _, _) = llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; dir ]
                Expect.equal code 0 "first"
                let (code, _, err) = llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; dir ]
                Expect.equal code 2 "refused"
                Expect.stringContains err "--force" "says how"

                let (code, _, _) =
                    llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; dir; "--force" ]

                Expect.equal code 0 "forced")
        }
        test "forward rejects ids outside the vocabulary and unparsable ids with exit code 2" {
            withTempDir (fun dir ->
                llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; dir ] |> ignore
                let (code, _, err) = llgbm [ "forward"; "--model"; dir; "--ids"; "1,64" ]
                Expect.equal code 2 "out of range"
                Expect.stringContains err "64" "names the id"
                let (code, _, err) = llgbm [ "forward"; "--model"; dir; "--ids"; "1,x" ]
                Expect.equal code 2 "not a number"
                Expect.stringContains err "\"x\"" "names the token")
        }
        test "bench forward --json reports throughput and utilisation against a matmul" {
            let (code, json, err) =
                llgbm [
                    "bench"
                    "forward"
                    "--preset"
                    "micro"
                    "--batch"
                    "2"
                    "--seq"
                    "16"
                    "--iters"
                    "2"
                    "--warmup"
                    "1"
                    "--matmul-size"
                    "128"
                    "--json"
                ]

            Expect.equal code 0 err
            use doc = JsonDocument.Parse json

            let get (name: string) =
                doc.RootElement.GetProperty(name).GetDouble()

            Expect.isGreaterThan (get "tokens_per_second") 0.0 "tokens/s"

            Expect.floatClose
                Accuracy.medium
                (get "model_flop_utilisation")
                (get "achieved_gflops_per_second" / get "matmul_gflops_per_second")
                "ratio"

            Expect.equal (doc.RootElement.GetProperty("parameters").GetInt64()) 19744L "micro has 19,744 parameters"
        }
        test "tokenize --json prints the ids of --text, recognising special tokens and adding none" {
            withTempDir (fun dir ->
                ByteLevelTokenizer().Save dir
                // h é (C3 A9) <|im_end|>: 104 195 169 258
                let (code, out, err) =
                    llgbm [ "tokenize"; "--model"; dir; "--text"; "hé<|im_end|>"; "--json" ]

                Expect.equal code 0 err
                use doc = JsonDocument.Parse out

                let ids = [
                    for id in doc.RootElement.GetProperty("ids").EnumerateArray() -> id.GetInt32()
                ]

                Expect.equal ids [ 104; 195; 169; 258 ] "ids")
        }
        test "tokenize --file reads the whole file; without --json it lists ids and token texts" {
            withTempDir (fun dir ->
                ByteLevelTokenizer().Save dir
                let file = Path.Combine(dir, "input.txt")
                File.WriteAllText(file, "a\n")

                let (code, out, err) =
                    llgbm [ "tokenize"; "--model"; dir; "--file"; file; "--json" ]

                Expect.equal code 0 err
                Expect.stringContains out "[97,10]" "a, newline"
                let (code, out, err) = llgbm [ "tokenize"; "--model"; dir; "--file"; file ]
                Expect.equal code 0 err
                Expect.stringContains out "2 tokens" "count"
                Expect.stringContains out "\"a\"" "token text"
                Expect.stringContains out "\"\\n\"" "newline shown escaped")
        }
        test "tokenize wants exactly one of --text and --file, and a directory with a tokenizer" {
            withTempDir (fun dir ->
                let (code, _, err) = llgbm [ "tokenize"; "--model"; dir ]
                Expect.equal code 2 "no input"
                Expect.stringContains err "--text" "says how"

                let (code, _, err) =
                    llgbm [ "tokenize"; "--model"; dir; "--text"; "a"; "--file"; "f" ]

                Expect.equal code 2 "both"
                Expect.stringContains err "not both" "says why"
                let (code, _, err) = llgbm [ "tokenize"; "--model"; dir; "--text"; "a" ]
                Expect.equal code 2 "no tokenizer"
                Expect.stringContains err "tokenizer.json" "names the files")
        }
        test "tokenize --json on Qwen's tokenizer.json gives the known ids of docs/reference.md §2" {
            let dir = Qwen2TokenizerTests.qwenModelDir ()

            let (code, out, err) =
                llgbm [ "tokenize"; "--model"; dir; "--text"; "Hello world<|im_end|>"; "--json" ]

            Expect.equal code 0 err
            use doc = JsonDocument.Parse out

            let ids = [
                for id in doc.RootElement.GetProperty("ids").EnumerateArray() -> id.GetInt32()
            ]

            Expect.equal ids [ 9707; 1879; 151645 ] "ids"
        }
    ]
