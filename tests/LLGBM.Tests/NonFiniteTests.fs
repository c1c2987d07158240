/// Checkpoints, adapters and options holding NaN or ±∞, and values that become non-finite at run time: every one is a
/// one-line error naming the file and tensor (or what became non-finite), and nothing is written.
module LLGBM.Tests.NonFiniteTests

open System
open System.Collections.Generic
open System.CommandLine
open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Cli
open LLGBM.Evaluation
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tasks
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestCli
open LLGBM.Tests.HostileFiles
open LLGBM.Tests.EvaluationFixtures
open LLGBM.Tests.SafetensorsTests.Kit

let private qProj = "model.layers.0.self_attn.q_proj.weight"
let private q0 = "model.layers.0.self_attn.q_proj"

let private loraKey path factor =
    $"base_model.model.{path}.lora_{factor}.weight"

/// `llgbm base init --preset preset` into root/name; returns the directory.
let private baseInit root name preset (extra: string list) =
    let dir = Path.Combine(root, name)

    let (code, _, err) =
        llgbm ([ "base"; "init"; "--preset"; preset; "--out"; dir; "--seed"; "5" ] @ extra)

    Expect.equal code 0 err
    dir

/// A random rank-4 PEFT adapter for `config` over `targets` with factors N(0, std), saved in root/name.
let private adapter (config: Qwen2Config) root name seed std (targets: (int * string) list) =
    let dir = Path.Combine(root, name)
    use lora = randomLora config seed 4L std 2.0 targets
    PeftAdapter.Save(dir, LoraConfig(Rank = 4, Alpha = 8.0), lora)
    dir

let private weightsOf dir = Path.Combine(dir, "model.safetensors")

let private adapterWeightsOf dir =
    Path.Combine(dir, PeftAdapter.WeightsFileName)

let private lastLine (text: string) =
    text.TrimEnd().Split('\n') |> Array.last |> (fun l -> l.TrimEnd '\r')

[<Tests>]
let tests =
    testList "NonFinite" [
        test "forward refuses a checkpoint with NaN in layer 0's q_proj, naming the file and the tensor" {
            withTempDir (fun root ->
                let dir = baseInit root "bad" "micro" []
                // q_proj is [32, 32]: flat index 37 is row 1, column 5.
                poison (weightsOf dir) qProj 37L nanf
                let (code, out, err) = llgbm [ "forward"; "--model"; dir; "--ids"; "1,2,3" ]
                Expect.equal code 2 err
                Expect.equal out "" "nothing printed"

                Expect.equal
                    (err.TrimEnd())
                    (nonFiniteError (weightsOf dir) qProj "1 NaN of 1,024 values (first at [1, 5])")
                    "one line naming the file and the tensor")
        }

        test "a bf16 checkpoint with NaN and −∞ in lm_head is refused with both counted, in its own dtype" {
            withTempDir (fun root ->
                let dir = baseInit root "bad" "micro" [ "--dtype"; "bf16" ]
                // lm_head is [64, 32] = 2,048 values; the last one is [63, 31].
                poison (weightsOf dir) "lm_head.weight" 2047L -infinityf
                poison (weightsOf dir) "lm_head.weight" 3L nanf
                let (code, _, err) = llgbm [ "forward"; "--model"; dir; "--ids"; "1" ]
                Expect.equal code 2 err

                Expect.equal
                    (err.TrimEnd())
                    (nonFiniteError (weightsOf dir) "lm_head.weight" "1 NaN, 1 −∞ of 2,048 values (first at [0, 3])")
                    "error")
        }

        test "forward --adapter refuses an adapter with +∞ in a lora_B, naming the adapter file and the tensor" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "micro" []
                let ad = adapter Qwen2Presets.Micro root "adapter" 3L 0.3 [ 0, "q_proj" ]
                // lora_B of q_proj is [32, 4]: flat index 5 is [1, 1].
                poison (adapterWeightsOf ad) (loraKey q0 "B") 5L infinityf

                let (code, out, err) =
                    llgbm [ "forward"; "--model"; dir; "--adapter"; ad; "--ids"; "1,2" ]

                Expect.equal code 2 err
                Expect.equal out "" "nothing printed"

                Expect.equal
                    (err.TrimEnd())
                    (nonFiniteError (adapterWeightsOf ad) (loraKey q0 "B") "1 +∞ of 128 values (first at [1, 1])")
                    "error")
        }

        test "delta refuses an adapter holding NaN" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "tiny" []

                let ad =
                    adapter Qwen2Presets.Tiny root "adapter" 4L 0.1 [ 0, "q_proj"; 1, "v_proj" ]
                // lora_A of q_proj is [4, 128]: flat index 130 is [1, 2].
                poison (adapterWeightsOf ad) (loraKey q0 "A") 130L nanf
                let (code, out, err) = llgbm [ "delta"; "--model"; dir; "--adapter"; ad; "--json" ]
                Expect.equal code 2 err
                Expect.equal out "" "no JSON printed"

                Expect.equal
                    (lastLine err)
                    (nonFiniteError (adapterWeightsOf ad) (loraKey q0 "A") "1 NaN of 512 values (first at [1, 2])")
                    "error")
        }

        test "eval refuses a NaN model instead of scoring NaN log-likelihoods, and writes no results" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "tiny" []
                poison (weightsOf dir) qProj 0L nanf
                let tasks = Path.Combine(root, "tasks")

                TaskDirectory.Save(
                    Path.Combine(tasks, "mc"),
                    task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine [ choice "12+30=" [ "42"; "7" ] "A" ]
                )

                let results = Path.Combine(root, "eval.json")

                let (code, out, err) =
                    llgbm [ "eval"; "--model"; dir; "--tasks"; tasks; "--out"; results ]

                Expect.equal code 2 err
                Expect.equal out "" "no table"

                Expect.equal
                    (lastLine err)
                    (nonFiniteError (weightsOf dir) qProj "1 NaN of 16,384 values (first at [0, 0])")
                    "error"

                Expect.isFalse (File.Exists results) "no results written")
        }

        test "merge refuses an adapter holding NaN and writes nothing" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "micro" []
                let a = adapter Qwen2Presets.Micro root "a" 5L 0.3 [ 0, "q_proj" ]
                let b = adapter Qwen2Presets.Micro root "b" 6L 0.3 [ 0, "q_proj" ]
                poison (adapterWeightsOf b) (loraKey q0 "A") 0L nanf
                let out = Path.Combine(root, "merged")

                let (code, _, err) =
                    llgbm [
                        "merge"
                        "--method"
                        "ties"
                        "--adapters"
                        a
                        b
                        "--out"
                        out
                        "--model"
                        dir
                    ]

                Expect.equal code 2 err

                Expect.equal
                    (lastLine err)
                    (nonFiniteError (adapterWeightsOf b) (loraKey q0 "A") "1 NaN of 128 values (first at [0, 0])")
                    "error"

                Expect.isFalse (Directory.Exists out) "nothing written")
        }

        test "merge: a λ that overflows the merged ΔW stops naming the module, before the SVD, and writes nothing" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "micro" []
                let a = adapter Qwen2Presets.Micro root "a" 5L 0.3 [ 0, "q_proj" ]
                let b = adapter Qwen2Presets.Micro root "b" 6L 0.3 [ 0, "q_proj" ]
                let out = Path.Combine(root, "merged")

                let (code, _, err) =
                    llgbm [
                        "merge"
                        "--method"
                        "linear"
                        "--adapters"
                        a
                        b
                        "--out"
                        out
                        "--model"
                        dir
                        "--lambda"
                        "1e300"
                    ]

                Expect.equal code 2 err
                let line = lastLine err
                Expect.stringStarts line "error: Merge (linear" "names the merge"
                Expect.stringContains line $"the merged ΔW of {q0} holds " "names the module"
                Expect.stringEnds line "; expected only finite numbers." "one line"
                Expect.isFalse (Directory.Exists out) "nothing written")
        }

        test "merge refuses NaN and infinite numeric options as parse errors, naming the option" {
            withTempDir (fun root ->
                let out = Path.Combine(root, "merged")

                for (option, value) in
                    [
                        "--lambda", "NaN"
                        "--lambda", "Infinity"
                        "--density", "-Infinity"
                        "--density", "1e999"
                        "--weights", "NaN"
                    ] do
                    let (code, _, err) =
                        llgbm [
                            "merge"
                            "--method"
                            "linear"
                            "--adapters"
                            "a"
                            "b"
                            "--out"
                            out
                            option
                            value
                        ]

                    Expect.equal code 1 $"{option} {value}: a parse error"
                    Expect.stringContains err $"{option} {value}: expected a finite number." $"{option} {value}: named"

                Expect.isFalse (Directory.Exists out) "nothing written")
        }

        test "every floating-point option of every command refuses NaN" {
            let root = LlgbmCommand.Create()

            let rec options (path: string list) (command: Command) = [
                for o in command.Options do
                    if
                        o.ValueType = typeof<float>
                        || o.ValueType = typeof<float32>
                        || o.ValueType = typeof<Nullable<float>>
                        || o.ValueType = typeof<float[]>
                    then
                        yield path, o.Name

                for c in command.Subcommands do
                    yield! options (path @ [ c.Name ]) c
            ]

            let found = options [] root
            Expect.isGreaterThanOrEqual found.Length 10 "the tree has floating-point options"
            Expect.contains found ([ "merge" ], "--lambda") "merge --lambda is among them"

            for (path, name) in found do
                let errors =
                    root.Parse(Array.ofList (path @ [ name; "NaN" ])).Errors
                    |> Seq.map (fun e -> e.Message)

                Expect.contains errors $"{name} NaN: expected a finite number." $"{String.Join(' ', path)} {name}"
        }

        test "adapter merge-into-base refuses an adapter holding NaN and writes no checkpoint" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "micro" []

                let ad =
                    adapter Qwen2Presets.Micro root "adapter" 7L 0.3 [ 0, "q_proj"; 1, "down_proj" ]

                poison (adapterWeightsOf ad) (loraKey q0 "B") 127L nanf
                let out = Path.Combine(root, "merged")

                let (code, _, err) =
                    llgbm [ "adapter"; "merge-into-base"; "--model"; dir; "--adapter"; ad; "--out"; out ]

                Expect.equal code 2 err

                Expect.equal
                    (err.TrimEnd())
                    (nonFiniteError (adapterWeightsOf ad) (loraKey q0 "B") "1 NaN of 128 values (first at [31, 3])")
                    "error"

                Expect.isFalse (Directory.Exists out) "nothing written")
        }

        test "adapter merge-into-base: a merged weight that overflows stops naming the module; nothing is written" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "micro" []
                // Finite factors of about 1e20: B·A is about 1e40, beyond float32.
                let ad = adapter Qwen2Presets.Micro root "adapter" 8L 1e20 [ 0, "q_proj" ]
                let out = Path.Combine(root, "merged")

                let (code, _, err) =
                    llgbm [ "adapter"; "merge-into-base"; "--model"; dir; "--adapter"; ad; "--out"; out ]

                Expect.equal code 2 err
                let line = err.TrimEnd()
                Expect.isFalse (line.Contains '\n') "one line"
                Expect.stringStarts line $"error: LoRA merge: the merged weight of {q0} holds " "names the module"

                Expect.stringEnds
                    line
                    " of 1,024 values (first at [0, 0]); expected only finite numbers."
                    "every value"

                Expect.isFalse (Directory.Exists out) "nothing written")
        }

        test "SafetensorsWriter refuses NaN and +∞ naming the tensor, before writing: the old file stays whole" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "t.safetensors")
                use good = torch.ones ([| 2L; 3L |])
                SafetensorsWriter.Save(path, [ KeyValuePair("w", good) ])
                let before = File.ReadAllBytes path

                use bad =
                    torch.tensor([| 1.0f; nanf; infinityf; 0.0f; 2.0f; 3.0f |]).reshape(2L, 3L)

                let message =
                    errorMessage<NonFiniteException>(fun () ->
                        SafetensorsWriter.Save(path, [ KeyValuePair("ok", good); KeyValuePair("w", bad) ]))

                Expect.equal
                    message
                    $"'{path}' was not written: tensor 'w' holds 1 NaN, 1 +∞ of 6 values (first at [0, 1]); expected only finite numbers."
                    "message"

                Expect.equal (File.ReadAllBytes path) before "the old file is untouched"
                Expect.equal (Directory.GetFiles dir) [| path |] "no temporary file left")
        }

        test "CheckpointWeights.Save refuses a non-finite tensor before writing any shard" {
            withTempDir (fun root ->
                let dir = Path.Combine(root, "ckpt")
                use a = torch.ones ([| 6L |])
                use b = torch.tensor ([| 1.0f; 2.0f; -infinityf |])

                let message =
                    errorMessage<NonFiniteException>(fun () ->
                        CheckpointWeights.Save(dir, [ KeyValuePair("a", a); KeyValuePair("b", b) ], 24L))

                Expect.equal
                    message
                    $"'{dir}' was not written: tensor 'b' holds 1 −∞ of 3 values (first at [2]); expected only finite numbers."
                    "message"

                Expect.isEmpty (filesUnder dir) "no shard written")
        }

        test "SafetensorsReader refuses a non-finite float tensor and reads integer tensors unchecked" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "t.safetensors")
                use f = torch.zeros ([| 3L; 4L |])
                use i = torch.tensor ([| Int64.MaxValue; Int64.MinValue |])
                SafetensorsWriter.Save(path, [ KeyValuePair("f", f); KeyValuePair("i", i) ])
                poison path "f" 11L nanf
                use reader = SafetensorsReader.Open path
                use ints = reader.Read "i"
                Expect.equal (ints.data<int64>().ToArray()) [| Int64.MaxValue; Int64.MinValue |] "integers read"

                Expect.equal
                    (errorMessage<NonFiniteException>(fun () -> reader.Read "f" |> ignore))
                    $"'{path}': tensor 'f' holds 1 NaN of 12 values (first at [2, 3]); expected only finite numbers."
                    "message")
        }

        test "continuation scoring stops on a non-finite log-likelihood instead of ranking choices by NaN" {
            use model = micro 13L

            do
                use _ = torch.no_grad ()
                model.lm_head.weight.fill_ infinityf |> ignore

            let requests = [| ContinuationRequest([| 1; 2 |], [| 3 |]) |]

            let message =
                errorMessage<NonFiniteException>(fun () ->
                    ContinuationScorer.LogLikelihoods(evaluated model, requests, 1) |> ignore)

            Expect.stringStarts
                message
                "Continuation scoring: the log-likelihood of request 0 (the model's output is not finite) holds the value "
                "names the request"
        }

        test "generation stops on non-finite logits instead of decoding the argmax of NaN" {
            use model = micro 14L

            do
                use _ = torch.no_grad ()
                model.lm_head.weight.fill_ infinityf |> ignore

            let message =
                errorMessage<NonFiniteException>(fun () ->
                    TextGeneration.Generate(model, [| [| 1; 2 |] :> Collections.Generic.IReadOnlyList<int> |])
                    |> ignore)

            Expect.stringStarts message "Generate: the next-token logits of step 0 holds " "names the step"
        }

        test "an adapter config whose lora_alpha overflows to ∞ is refused naming adapter_config.json" {
            withTempDir (fun root ->
                let dir = baseInit root "base" "micro" []
                let ad = adapter Qwen2Presets.Micro root "adapter" 9L 0.3 [ 0, "q_proj" ]
                let configPath = Path.Combine(ad, PeftAdapter.ConfigFileName)
                let json = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText configPath).AsObject()
                json["lora_alpha"] <- Text.Json.Nodes.JsonNode.Parse "1e999"
                File.WriteAllText(configPath, json.ToJsonString())

                let (code, _, err) =
                    llgbm [ "forward"; "--model"; dir; "--adapter"; ad; "--ids"; "1" ]

                Expect.equal code 2 err

                Expect.equal
                    (err.TrimEnd())
                    $"error: {configPath}: lora_alpha must be a finite number, found 1e999."
                    "error")
        }
    ]
