module LLGBM.Tests.DeltaCommandTests

open System.IO
open System.Text.Json
open Expecto
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestCli
open LLGBM.Tests.SafetensorsTests.Kit

let private everyModule = [
    for layer in 0..1 do
        for name in LoraTarget.All -> layer, name
]

/// The values of a printed {"delta": [...]}.
let private printedDelta (out: string) =
    use doc = JsonDocument.Parse out

    [|
        for v in doc.RootElement.GetProperty("delta").EnumerateArray() -> v.GetSingle()
    |]

/// A tiny base checkpoint (with its byte-level tokenizer) and a random adapter over every module, under `root`.
let private tinyBaseAndAdapter root =
    let baseDir = Path.Combine(root, "base")
    let adapterDir = Path.Combine(root, "adapter")

    let (code, _, err) =
        llgbm [ "base"; "init"; "--preset"; "tiny"; "--out"; baseDir; "--seed"; "4" ]

    Expect.equal code 0 err
    let config = Qwen2Presets.Tiny

    use lora =
        randomLora config 9L 4L 0.05 2.0 [
            for layer in 0 .. config.NumHiddenLayers - 1 do
                for name in LoraTarget.All -> layer, name
        ]

    PeftAdapter.Save(adapterDir, LoraConfig(Rank = 4, Alpha = 8.0), lora)
    baseDir, adapterDir

let private maxDiff (a: float32 array) (b: float32 array) =
    Array.map2 (fun (x: float32) y -> abs (float x - float y)) a b |> Array.max

[<Tests>]
let tests =
    testList "DeltaCommand" [
        test "delta --probe-ids prints the library's delta of a saved adapter on a base init checkpoint" {
            withTempDir (fun root ->
                let baseDir = Path.Combine(root, "base")
                let adapterDir = Path.Combine(root, "adapter")
                let idsFile = Path.Combine(root, "ids.json")

                let (code, _, err) =
                    llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; baseDir; "--seed"; "3" ]

                Expect.equal code 0 err

                do
                    use lora = randomLora Qwen2Presets.Micro 8L 4L 0.3 2.0 everyModule
                    PeftAdapter.Save(adapterDir, LoraConfig(Rank = 4, Alpha = 8.0), lora)

                File.WriteAllText(idsFile, "[[1, 2, 3, 4], [5, 6], [7, 8, 9]]")

                let (code, out, err) =
                    llgbm [
                        "delta"
                        "--model"
                        baseDir
                        "--adapter"
                        adapterDir
                        "--probe-ids"
                        idsFile
                        "--json"
                    ]

                Expect.equal code 0 err
                use doc = JsonDocument.Parse out

                let printed = [|
                    for v in doc.RootElement.GetProperty("delta").EnumerateArray() -> v.GetSingle()
                |]

                use model = Qwen2ForCausalLM.FromPretrained baseDir
                model.eval () |> ignore
                let struct (_, lora) = PeftAdapter.Load(adapterDir, model.Config)
                use lora = lora
                let probes = (ProbeSet.LoadIds idsFile).Tokenize null
                use embedder = new DeltaEmbedder(model, probes)
                use expected = embedder.ComputeNoGrad lora
                let values = expected.data<float32>().ToArray()
                Expect.equal printed.Length 32 "width"
                Expect.isGreaterThan (Array.max (Array.map abs values)) 0.0f "non-zero"
                Expect.equal printed values "same values"

                let (code, _, err) =
                    llgbm [
                        "delta"
                        "--model"
                        baseDir
                        "--adapter"
                        adapterDir
                        "--probe-ids"
                        idsFile
                        "--pooling"
                        "max"
                    ]

                Expect.equal code 2 "bad pooling"
                Expect.stringContains err "--pooling" "message")
        }

        test "delta --kind meaning --meaning-probes prints the library's delta meaning, one coordinate per pair" {
            withTempDir (fun root ->
                let baseDir, adapterDir = tinyBaseAndAdapter root
                let pairsFile = Path.Combine(root, "pairs.json")

                File.WriteAllText(
                    pairsFile,
                    """[{"prompt": "047 =", "continuation": " 050"}, {"prompt": "kqzm ->", "continuation": " mzqk"}, """
                    + """{"prompt": "words: red cat pear ?", "continuation": " yes"}]"""
                )

                let args = [
                    "delta"
                    "--model"
                    baseDir
                    "--adapter"
                    adapterDir
                    "--kind"
                    "meaning"
                    "--meaning-probes"
                    pairsFile
                ]

                let (code, out, err) = llgbm (args @ [ "--json" ])
                Expect.equal code 0 err
                let printed = printedDelta out
                use model = Qwen2ForCausalLM.FromPretrained baseDir
                model.eval () |> ignore
                let struct (_, lora) = PeftAdapter.Load(adapterDir, model.Config)
                use lora = lora

                use embedder =
                    new MeaningDeltaEmbedder(model, LLGBM.Text.Tokenizers.Load baseDir, MeaningProbeSet.Load pairsFile)

                use expected = embedder.ComputeNoGrad lora
                let values = expected.data<float32>().ToArray()
                Expect.equal printed.Length 3 "one coordinate per pair"
                Expect.isGreaterThan (Array.max (Array.map abs values)) 0.0f "non-zero"
                Expect.equal printed values "same values"
                let (code, out, err) = llgbm args
                Expect.equal code 0 err

                Expect.stringContains
                    out
                    "meaning delta over 3 probes (pairs, kind=meaning;norm=bytes;maxlen=256): dim 3"
                    "summary")
        }

        test
            "delta --finetuned: a checkpoint with the adapter merged gives the adapter's delta of either kind; the base gives zero" {
            withTempDir (fun root ->
                let baseDir, adapterDir = tinyBaseAndAdapter root
                let mergedDir = Path.Combine(root, "merged")

                let (code, _, err) =
                    llgbm [
                        "adapter"
                        "merge-into-base"
                        "--model"
                        baseDir
                        "--adapter"
                        adapterDir
                        "--out"
                        mergedDir
                    ]

                Expect.equal code 0 err

                for kind in
                    [
                        [ "--kind"; "activation" ]
                        [ "--kind"; "meaning" ]
                        [ "--kind"; "meaning"; "--generic"; "1" ]
                    ] do
                    let run target =
                        let (code, out, err) =
                            llgbm ([ "delta"; "--model"; baseDir ] @ target @ kind @ [ "--json" ])

                        Expect.equal code 0 err
                        printedDelta out

                    let adapted = run [ "--adapter"; adapterDir ]
                    let merged = run [ "--finetuned"; mergedDir ]
                    let self = run [ "--finetuned"; baseDir ]
                    let kindText = String.concat " " kind
                    Expect.isGreaterThan (Array.max (Array.map abs adapted)) 1e-3f $"{kindText}: non-trivial"
                    Expect.equal merged.Length adapted.Length $"{kindText}: same width"
                    Expect.isLessThan (maxDiff merged adapted) 1e-4 $"{kindText}: merged = functional"
                    Expect.equal (Array.max (Array.map abs self)) 0.0f $"{kindText}: the base itself gives zero")
        }

        test "delta --kind meaning --probe-tasks uses each task's prompts with their answers" {
            withTempDir (fun root ->
                let baseDir, adapterDir = tinyBaseAndAdapter root
                let suite = Path.Combine(root, "suite")

                LLGBM.Tasks.Synthetic.SyntheticSuiteFiles.Write(
                    suite,
                    LLGBM.Tasks.Synthetic.SyntheticSuiteSettings(TrainCount = 10, TestCount = 2)
                )
                |> ignore

                let (code, out, err) =
                    llgbm [
                        "delta"
                        "--model"
                        baseDir
                        "--adapter"
                        adapterDir
                        "--kind"
                        "meaning"
                        "--probe-tasks"
                        suite
                        "--per-task"
                        "1"
                        "--probe-seed"
                        "3"
                        "--json"
                    ]

                Expect.equal code 0 err
                let pairs = MeaningProbeSet.FromTasks(LLGBM.Tasks.TaskSuite.LoadAll suite, 1, 3L)
                use model = Qwen2ForCausalLM.FromPretrained baseDir
                model.eval () |> ignore
                let struct (_, lora) = PeftAdapter.Load(adapterDir, model.Config)
                use lora = lora

                use embedder =
                    new MeaningDeltaEmbedder(model, LLGBM.Text.Tokenizers.Load baseDir, pairs)

                use expected = embedder.ComputeNoGrad lora
                Expect.equal (printedDelta out) (expected.data<float32>().ToArray()) "the task pairs' delta")
        }

        test "delta refuses conflicting targets, probe sources and options of the other kind" {
            withTempDir (fun root ->
                let baseDir, adapterDir = tinyBaseAndAdapter root
                let file = Path.Combine(root, "probes.json")
                File.WriteAllText(file, "[\"a\"]")

                let cases = [
                    [ "--adapter"; adapterDir; "--finetuned"; baseDir ], "--adapter DIR or --finetuned DIR"
                    [], "--adapter DIR or --finetuned DIR"
                    [ "--adapter"; adapterDir; "--kind"; "meaning"; "--probes"; file ],
                    "--probes does not apply to --kind meaning"
                    [ "--adapter"; adapterDir; "--kind"; "meaning"; "--pooling"; "mean" ], "--pooling does not apply"
                    [ "--adapter"; adapterDir; "--meaning-probes"; file ],
                    "--meaning-probes does not apply to --kind activation"
                    [ "--adapter"; adapterDir; "--normalize"; "tokens" ], "--normalize does not apply"
                    [ "--adapter"; adapterDir; "--probes"; file; "--probe-tasks"; root ], "one probe source"
                    [ "--adapter"; adapterDir; "--per-task"; "2" ], "apply to --probe-tasks"
                    [ "--adapter"; adapterDir; "--probes"; file; "--generic"; "2" ], "--generic applies only"
                ]

                for (extra, message) in cases do
                    let (code, _, err) = llgbm ([ "delta"; "--model"; baseDir ] @ extra)
                    let text = String.concat " " extra
                    Expect.equal code 2 $"{text}: exit code"
                    Expect.stringContains err message text)
        }
    ]
