module LLGBM.Tests.GeneratorTrainingTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Generators
open LLGBM.Lora
open LLGBM.Tasks.Synthetic
open LLGBM.Teachers
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels
open LLGBM.Experiments

/// A tiny base (random weights), a small suite and teachers for upper, add-2 (training) and reverse (held out).
let private fixture =
    lazy
        (let root = TestPools.tempRoot "llgbm-gen"
         let baseDir, suite = TestPools.tinyBaseAndSuite root

         let pool =
             TestPools.trainPool root baseDir suite 6 [| "upper"; "add-2"; "reverse" |]

         root, GeneratorInputs(baseDir, suite, pool, Path.Combine(root, "deltas")))

/// Character statistics as a stand-in encoder (24 features): it only has to tell the tasks' texts apart.
let private encoding = TestPools.characterEncoding

let private constantEncoding =
    ConditionEncoding("test-constant", fun (texts: IReadOnlyList<string>) -> torch.zeros (int64 texts.Count, 24L))

let private small (name: string) (weight: float) (delta: float) =
    GeneratorConfig(
        Name = name,
        Seed = 3L,
        HiddenSize = 32,
        EmbeddingSize = 8,
        ConditionPrompts = 4,
        ConditionPool = 16,
        Weight = LossWeight.Constant weight,
        Delta = LossWeight.Constant delta,
        Probes = 2,
        Steps = 8,
        AdaptersPerStep = 4,
        Microbatch = 2,
        LearningRate = 1e-2,
        WarmupSteps = 0,
        LogEvery = 2,
        CheckpointEvery = 4,
        EvalEvery = 0,
        EvalBatches = 2,
        EvalLimit = 4,
        TrainTasks = [| "upper"; "add-2" |],
        TestTasks = [| "reverse" |]
    )

/// A copy of `config` with the given snake_case fields replaced (C# records cannot be copy-updated from F#).
let private withConfig (changes: (string * JsonNode) list) (config: GeneratorConfig) =
    let node = JsonNode.Parse(config.ToJson()).AsObject()

    for (key, value) in changes do
        node[key] <- value

    System.Text.Json.JsonSerializer.Deserialize<GeneratorConfig>(node.ToJsonString(), GeneratorConfig.JsonOptions)

let private metrics (run: string) =
    File.ReadAllLines(Path.Combine(run, GeneratorRun.MetricsFile))
    |> Array.map (fun l -> JsonNode.Parse(l).AsObject())

let private fresh (root: string) name =
    Path.Combine(root, name + "-" + Guid.NewGuid().ToString("N"))

let private weights (run: string) step =
    use reader =
        SafetensorsReader.Open(Path.Combine(GeneratorCheckpoint.StepDir(run, step), GeneratorCheckpoint.WeightsFile))

    [
        for name in reader.Entries.Keys |> Seq.sort ->
            use t = reader.Read name
            name, t.data<float32>().ToArray()
    ]

[<Tests>]
let tests =
    testSequenced
    <| testList "GeneratorRun" [
        test "dnd-weight learns: the weight term falls, every term is logged, held-out results hold every method" {
            let root, inputs = fixture.Force()
            let run = fresh root "dnd"
            let result = GeneratorRun.Train(small "dnd" 1.0 0.0, inputs, run, encoding)
            let rows = metrics run |> Array.filter (fun r -> r.ContainsKey "weight")
            Expect.sequenceEqual (rows |> Array.map (fun r -> int r["step"])) [ 2; 4; 6; 8 ] "logged steps"
            let first = float rows[0].["weight"]
            let last = float rows[3].["weight"]
            Expect.isLessThan last first "the weight loss falls"
            Expect.isGreaterThan (float rows[0].["grad_norm"]) 0.0 "non-zero gradients"

            for key in [ "loss"; "norm"; "delta_cosine"; "adapter_norm"; "lambda_delta"; "lr" ] do
                Expect.isTrue (rows[0].ContainsKey key) $"{key} logged"

            let methods = result.Results |> Seq.map (fun r -> r.Method) |> Set.ofSeq
            Expect.equal methods (set [ "generated"; "base"; "oracle"; "mean-teacher"; "random" ]) "methods"
            let generated = result.Results |> Seq.find (fun r -> r.Method = "generated")
            Expect.equal generated.Accuracies.Count 2 "one accuracy per evaluation condition"
            Expect.equal generated.Task "reverse" "the held-out task"
            Expect.isGreaterThan result.TrainSensitivity.RelativeSpread 0.0 "adapters depend on the condition"
            Expect.isTrue (File.Exists(Path.Combine(run, "results", GeneratorRun.HeldOutFile))) "heldout.json"
        }

        test "A resumed run ends with the same generator as an uninterrupted one, and a finished run is not retrained" {
            let root, inputs = fixture.Force()
            let whole = fresh root "whole"
            GeneratorRun.Train(small "r" 1.0 1.0, inputs, whole, encoding) |> ignore
            let cut = fresh root "cut"
            GeneratorRun.Train(small "r" 1.0 1.0, inputs, cut, encoding) |> ignore
            // Interrupt after step 4: drop the later checkpoint and the results, point latest back.
            Directory.Delete(GeneratorCheckpoint.StepDir(cut, 8), true)
            Directory.Delete(Path.Combine(cut, "results"), true)
            File.WriteAllText(Path.Combine(cut, "checkpoints", "latest"), "step-00004")
            GeneratorRun.Train(small "r" 1.0 1.0, inputs, cut, encoding) |> ignore
            let a = weights whole 8
            let b = weights cut 8

            for ((name, x), (_, y)) in List.zip a b do
                Expect.equal x.Length y.Length name
                let diff = Array.map2 (fun (p: float32) q -> abs (p - q)) x y |> Array.max
                Expect.isLessThan diff 1e-5f $"{name} matches"

            Expect.sequenceEqual
                (metrics cut
                 |> Array.filter (fun r -> r.ContainsKey "weight")
                 |> Array.map (fun r -> int r["step"]))
                [ 2; 4; 6; 8 ]
                "no duplicated steps in metrics.jsonl"

            let stamp =
                File.GetLastWriteTimeUtc(
                    Path.Combine(GeneratorCheckpoint.StepDir(whole, 8), GeneratorCheckpoint.WeightsFile)
                )

            GeneratorRun.Train(small "r" 1.0 1.0, inputs, whole, encoding) |> ignore

            Expect.equal
                (File.GetLastWriteTimeUtc(
                    Path.Combine(GeneratorCheckpoint.StepDir(whole, 8), GeneratorCheckpoint.WeightsFile)
                ))
                stamp
                "not retrained"
        }

        test "delta-only trains through the delta term; a different config in the same directory is refused" {
            let root, inputs = fixture.Force()
            let run = fresh root "delta"
            GeneratorRun.Train(small "d" 0.0 1.0, inputs, run, encoding) |> ignore
            let rows = metrics run |> Array.filter (fun r -> r.ContainsKey "delta")
            Expect.equal rows.Length 4 "delta term logged at every logged step"
            Expect.equal (float rows[0].["lambda_weight"]) 0.0 "λ_w = 0"
            Expect.isLessThan (float rows[3].["delta"]) (float rows[0].["delta"]) "the delta term falls"

            let message =
                errorMessage<LlgbmException>(fun () ->
                    GeneratorRun.Train(small "d" 1.0 1.0, inputs, run, encoding) |> ignore)

            Expect.stringContains message "another configuration" "refused"
        }

        test "A generator that cannot see the condition is visible as such: zero spread across tasks" {
            let root, inputs = fixture.Force()
            let run = fresh root "blind"

            let result =
                GeneratorRun.Train(small "blind" 1.0 0.0, inputs, run, constantEncoding)

            Expect.isLessThan result.TrainSensitivity.RelativeSpread 1e-6 "same adapter for every task"
        }

        test "A non-finite loss stops training with the step and the checkpoint situation" {
            let root, inputs = fixture.Force()
            let run = fresh root "nan"

            let message =
                errorMessage<LlgbmException>(fun () ->
                    GeneratorRun.Train(small "nan" 1e300 0.0, inputs, run, encoding) |> ignore)

            Expect.stringContains message "step 1" "names the step"
            Expect.stringContains message "No checkpoint" "says there is no checkpoint yet"
        }

        test "A failed start leaves nothing that blocks the corrected rerun; an input error creates no run directory" {
            let root, inputs = fixture.Force()
            let run = fresh root "failed-start"

            let config =
                small "failed-start" 1.0 0.0
                |> withConfig [ "test_tasks", JsonNode.Parse "[\"no-such-task\"]" ]

            errorMessage<LlgbmException>(fun () -> GeneratorRun.Train(config, inputs, run, encoding) |> ignore)
            |> fun m -> Expect.stringContains m "no-such-task" "names the unknown task"

            Expect.isFalse (Directory.Exists run) "no run directory for a config refused before training"

            // A weight of 1e300 makes the loss non-finite at step 1, after config.json and run.json were written.
            errorMessage<LlgbmException>(fun () ->
                GeneratorRun.Train(small "failed-start" 1e300 0.0, inputs, run, encoding)
                |> ignore)
            |> fun m -> Expect.stringContains m "No checkpoint" "fails before any checkpoint"

            Expect.isTrue (File.Exists(Path.Combine(run, GeneratorRun.ConfigFile))) "the failed start wrote config.json"
            let corrected = small "failed-start" 1.0 0.0
            GeneratorRun.Train(corrected, inputs, run, encoding) |> ignore

            Expect.equal
                (File.ReadAllText(Path.Combine(run, GeneratorRun.ConfigFile)))
                (corrected.ToJson())
                "the corrected config"

            Expect.sequenceEqual
                (metrics run
                 |> Array.filter (fun r -> r.ContainsKey "weight")
                 |> Array.map (fun r -> int r["step"]))
                [ 2; 4; 6; 8 ]
                "trained from the start"
        }

        test
            "A run killed during its final evaluation evaluates again on resume: the metrics line and eval-step file return" {
            let root, inputs = fixture.Force()
            let run = fresh root "final-eval"
            let config = small "final-eval" 1.0 0.0
            GeneratorRun.Train(config, inputs, run, encoding) |> ignore
            let stepFile = GeneratorRun.EvaluationFile(run, 8)

            let heldOut =
                Path.Combine(run, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile)

            let metricsFile = Path.Combine(run, GeneratorRun.MetricsFile)

            let isEval (r: JsonObject) =
                r.ContainsKey GeneratorRun.EvaluationMetric

            let original = metrics run |> Array.find isEval

            let generated (file: string) =
                (GeneratorRun.ReadResults file).Results
                |> Seq.filter (fun r -> r.Method = "generated")
                |> Seq.map (fun r -> r.Task, r.Split, List.ofSeq r.Accuracies)
                |> List.ofSeq

            let before = generated stepFile

            let weightsFile =
                Path.Combine(GeneratorCheckpoint.StepDir(run, 8), GeneratorCheckpoint.WeightsFile)

            let stamp = File.GetLastWriteTimeUtc weightsFile

            let dropEvaluationLine () =
                File.WriteAllLines(
                    metricsFile,
                    File.ReadAllLines metricsFile
                    |> Array.filter (fun l -> not (l.Contains GeneratorRun.EvaluationMetric))
                )

            let checkResumed what =
                let rows = metrics run
                let evals = rows |> Array.filter isEval

                Expect.equal
                    (evals |> Array.map (fun r -> int r["step"]))
                    [| 8 |]
                    $"{what}: one evaluation line, at step 8"

                Expect.floatClose
                    Accuracy.veryHigh
                    (float evals[0].[GeneratorRun.EvaluationMetric])
                    (float original[GeneratorRun.EvaluationMetric])
                    $"{what}: the same held-out accuracy"

                Expect.sequenceEqual
                    (rows
                     |> Array.filter (fun r -> r.ContainsKey "weight")
                     |> Array.map (fun r -> int r["step"]))
                    [ 2; 4; 6; 8 ]
                    $"{what}: the training lines are kept"

                Expect.equal (generated stepFile) before $"{what}: eval-step-00008.json holds the same evaluation"
                Expect.isTrue (File.Exists heldOut) $"{what}: heldout.json"
                Expect.equal (File.GetLastWriteTimeUtc weightsFile) stamp $"{what}: not retrained"

            // Killed while evaluating: neither the eval-step file nor its metrics line (nor heldout.json) was written.
            File.Delete stepFile
            File.Delete heldOut
            dropEvaluationLine ()
            GeneratorRun.Train(config, inputs, run, encoding) |> ignore
            checkResumed "evaluation lost"
            // Killed between the two writes: the eval-step file is there, its metrics line is not.
            dropEvaluationLine ()
            GeneratorRun.Train(config, inputs, run, encoding) |> ignore
            checkResumed "metrics line lost"
        }

        test "The two-stage, delta-head and hyper-convolutional (token loss) variants train and log their terms" {
            let root, inputs = fixture.Force()

            for (name, config) in
                [
                    "two-stage",
                    small "two-stage" 1.0 1.0
                    |> withConfig [ "variant", jnode "TwoStage"; "delta_adapters", jnode 1 ]
                    "delta-head", small "delta-head" 1.0 1.0 |> withConfig [ "variant", jnode "DeltaHead" ]
                    "hyperconv",
                    small "hyperconv" 1.0 0.0
                    |> withConfig [
                        "architecture", jnode "HyperConv"
                        "weight_loss", jnode "Tokens"
                        "token_width", jnode 64
                        "conv_blocks", JsonNode.Parse "[[8, 32]]"
                    ]
                ] do
                let run = fresh root name
                let result = GeneratorRun.Train(config, inputs, run, encoding)
                let rows = metrics run |> Array.filter (fun r -> r.ContainsKey "weight")
                Expect.equal rows.Length 4 $"{name}: logged steps"

                if name <> "hyperconv" then
                    Expect.isTrue (rows[0].ContainsKey "auxiliary") $"{name}: auxiliary term logged"
                else
                    Expect.isLessThan (float rows[3].["weight"]) (float rows[0].["weight"]) "token loss falls"

                Expect.isTrue (result.Results |> Seq.exists (fun r -> r.Method = "generated")) $"{name}: evaluated"
        }

        test "llgbm generate writes a PEFT adapter equal to the generator's output for the same prompts" {
            let root, inputs = fixture.Force()
            let run = fresh root "cli"
            let config = small "cli" 1.0 0.0 |> withConfig [ "encoder", jnode "random" ]

            use encoder =
                LLGBM.Conditioning.SentenceEncoders.Create("random", seed = config.Seed)

            GeneratorRun.Train(config, inputs, run, ConditionEncoding.From encoder)
            |> ignore

            let prompts =
                Path.Combine(root, "prompts-" + Guid.NewGuid().ToString("N") + ".jsonl")

            let lines = [ "abcd ->", "DCBA"; "wxyz ->", "ZYXW"; "kqzm ->", "MZQK" ]

            File.WriteAllLines(
                prompts,
                lines
                |> List.map (fun (p, a) ->
                    JsonObject(
                        [
                            KeyValuePair("prompt", JsonValue.Create p :> JsonNode)
                            KeyValuePair("answer", JsonValue.Create a)
                        ]
                    )
                        .ToJsonString())
            )

            let out = Path.Combine(root, "adapter-" + Guid.NewGuid().ToString("N"))

            let (code, stdout, err) =
                llgbm [ "generate"; "--generator"; run; "--prompts"; prompts; "--out"; out ]

            Expect.equal code 0 err
            Expect.stringContains stdout "3 prompts" "reports the condition"
            use model = Qwen2Checkpoint.Load inputs.Base
            let struct (_, loaded) = PeftAdapter.Load(out, model.Config)
            use loaded = loaded
            use gen = GeneratorRun.LoadGenerator(run, model.Config)
            let texts = lines |> List.map (fun (p, a) -> p + " " + a)
            use expected = GeneratorRun.GenerateOne(gen, ConditionEncoding.From encoder, texts)

            for KeyValue(path, m) in expected.Modules do
                use d = (loaded.Modules[path].A - m.A).abs().max()
                Expect.isLessThan (d.item<float32>()) 1e-6f $"{path} A"

            let bad = Path.Combine(root, "bad-" + Guid.NewGuid().ToString("N") + ".jsonl")
            File.WriteAllText(bad, "{\"prompt\": \"abcd ->\"}\n")

            let (code, _, err) =
                llgbm [ "generate"; "--generator"; run; "--prompts"; bad; "--out"; out + "-2" ]

            Expect.equal code 2 "bad input"
            Expect.stringContains err "answer" "says the answer is missing"
        }

        test "The shuffled-delta control trains on permuted delta targets but evaluates against each task's own teacher" {
            let root, inputs = fixture.Force()
            // A directory of its own, so that no reference result cached by another test's run is reused.
            let run = Path.Combine(fresh root "isolated", "shuffled")

            let config = small "shuffled" 1.0 1.0 |> withConfig [ "shuffle_deltas", jnode true ]

            let result = GeneratorRun.Train(config, inputs, run, encoding)

            let oracles =
                result.Results |> Seq.filter (fun r -> r.Method = "oracle") |> List.ofSeq

            Expect.equal
                (oracles |> List.filter (fun r -> r.Split = "in-domain") |> List.length)
                2
                "both training tasks in-domain"

            for r in oracles do
                Expect.floatClose
                    Accuracy.medium
                    r.DeltaCosine.Value
                    1.0
                    $"{r.Task}: the oracle's delta is the task's own"
        }
    ]
