module LLGBM.Tests.TransferTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Generators
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels
open LLGBM.Experiments

let private lora =
    LoraConfig(Rank = 2, Alpha = 4.0, TargetModules = [| "q_proj"; "v_proj"; "down_proj" |])

let private twoStage =
    GeneratorConfig(
        Variant = GeneratorVariant.TwoStage,
        HiddenSize = 16,
        EmbeddingSize = 8,
        ConditionPrompts = 3,
        Seed = 9L
    )

let private info (kind: DeltaKind) (dim: int) (coordinates: string) (hidden: int) =
    GeneratorRun.RunInfo(GeneratorInputs("b", "t", "p", "d"), "enc", 24, lora, dim, kind, coordinates, Nullable hidden)

/// A config file's text with `fields` (raw JSON) added to a valid two-stage config.
let private configError (fields: string) =
    let file =
        Path.Combine(Path.GetTempPath(), $"llgbm-transfer-{Guid.NewGuid():N}.json")

    File.WriteAllText(file, $$"""{ "name": "t", "variant": "TwoStage", "delta": { "value": 1 }, {{fields}} }""")

    try
        errorMessage<LlgbmException>(fun () -> GeneratorConfig.Load file |> ignore)
    finally
        File.Delete file

/// Character statistics as a stand-in encoder (24 features).
let private encoding = TestPools.characterEncoding

let private small (kind: DeltaKind) (seed: int64) =
    GeneratorConfig(
        Name = "transfer-test",
        Seed = seed,
        Variant = GeneratorVariant.TwoStage,
        HiddenSize = 32,
        EmbeddingSize = 8,
        ConditionPrompts = 4,
        ConditionPool = 16,
        Weight = LossWeight.Constant 1.0,
        Delta = LossWeight.Constant 1.0,
        DeltaAdapters = 1,
        DeltaKind = kind,
        MeaningProbesPerTask = 2,
        Probes = 2,
        Steps = 4,
        AdaptersPerStep = 2,
        Microbatch = 2,
        WarmupSteps = 0,
        LogEvery = 2,
        CheckpointEvery = 4,
        EvalEvery = 0,
        EvalBatches = 2,
        EvalLimit = 3,
        InDomainTasks = 1,
        TrainTasks = [| "upper"; "add-2" |],
        TestTasks = [| "reverse" |]
    )

/// Two randomly initialised byte-level backbones (tiny: H 128, 4 layers; tiny-b: H 96, 3 layers) on one small suite,
/// each with its own short teachers for upper, add-2 and reverse.
let private fixture =
    lazy
        (let root = TestPools.tempRoot "llgbm-transfer"
         let baseA, suite = TestPools.tinyBaseAndSuite root
         let baseB = Path.Combine(root, "base-b")

         let (code, _, err) =
             llgbm [ "base"; "init"; "--preset"; "tiny-b"; "--out"; baseB; "--seed"; "5" ]

         Expect.equal code 0 err
         let tasks = [| "upper"; "add-2"; "reverse" |]
         let poolA = TestPools.trainPool root baseA suite 4 tasks
         let rootB = Path.Combine(root, "b")
         Directory.CreateDirectory rootB |> ignore
         let poolB = TestPools.trainPool rootB baseB suite 4 tasks

         root,
         GeneratorInputs(baseA, suite, poolA, Path.Combine(root, "deltas")),
         GeneratorInputs(baseB, suite, poolB, Path.Combine(rootB, "deltas")))

[<Tests>]
let tests =
    testList "Transfer" [
        test "tiny-b has H 96 and 3 layers, and its parameter count is the hand count of that architecture" {
            let c = Qwen2Presets.Get "tiny-b"
            Expect.equal (c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize) (96, 3, 256) "shape"
            use model = new Qwen2ForCausalLM(c)
            let parameters = model.parameters () |> Seq.sumBy (fun p -> p.numel ())
            // Per layer: q 96·96 + 96, k and v 96·48 + 48 each (2 KV heads of 24), o 96·96, MLP 3 · 96·256, two norms.
            let layer = (96 * 96 + 96) + 2 * (96 * 48 + 48) + 96 * 96 + 3 * 96 * 256 + 2 * 96
            // Tied embeddings 272 · 96 and the final norm.
            Expect.equal parameters (int64 (272 * 96 + 3 * layer + 96)) "parameters"
        }

        test "delta_kind reads Activation and Meaning, and bad values or counts are errors naming the field" {
            let file =
                Path.Combine(Path.GetTempPath(), $"llgbm-transfer-{Guid.NewGuid():N}.json")

            File.WriteAllText(
                file,
                """{ "name": "t", "variant": "TwoStage", "delta": { "value": 1 }, "delta_kind": "Meaning", "meaning_probes_per_task": 3 }"""
            )

            let config = GeneratorConfig.Load file
            File.Delete file
            Expect.equal config.DeltaKind DeltaKind.Meaning "meaning"
            Expect.equal config.MeaningProbesPerTask 3 "pairs per task"
            Expect.equal (GeneratorConfig().DeltaKind) DeltaKind.Activation "activation by default"
            Expect.stringContains (configError "\"delta_kind\": \"Logits\"") "delta_kind" "unknown kind"
            Expect.stringContains (configError "\"meaning_probes_per_task\": 0") "meaning_probes_per_task" "no pairs"
        }

        test "Meaning coordinates do not depend on the backbone; activation coordinates do" {
            let tasks = [
                EvaluationFixtures.task "g" LLGBM.Tasks.TaskKind.Generation LLGBM.Tasks.AnswerExtraction.FirstLine [
                    EvaluationFixtures.answered "x" "1"
                ]
            ]

            let withTrain = [
                for t in tasks ->
                    LLGBM.Tasks.TaskData(
                        t.Spec,
                        ResizeArray [ for i in 0..5 -> EvaluationFixtures.answered $"p{i}" $"a{i}" ],
                        t.Test
                    )
            ]

            let meaning = GeneratorConfig(DeltaKind = DeltaKind.Meaning)
            let activation = GeneratorConfig()
            let probes = ProbeSet.Generic 2

            let of' config model =
                GeneratorData.CoordinatesOf(config, withTrain, probes, model)

            Expect.equal
                (of' meaning Qwen2Presets.Tiny)
                (of' meaning Qwen2Presets.TinyB)
                "meaning: same pairs, same coordinates"

            Expect.notEqual
                (of' activation Qwen2Presets.Tiny)
                (of' activation Qwen2Presets.TinyB)
                "activation: hidden units differ"

            Expect.notEqual
                (of' meaning Qwen2Presets.Tiny)
                (of' (GeneratorConfig(DeltaKind = DeltaKind.Meaning, MeaningProbesPerTask = 3)) Qwen2Presets.Tiny)
                "other pairs, other coordinates"
        }

        test "Check: meaning runs of one pair set compose across widths; activation runs of widths 128 and 96 do not" {
            let ok =
                GeneratorTransfer.Check(
                    twoStage,
                    info DeltaKind.Meaning 40 "m" 128,
                    twoStage,
                    info DeltaKind.Meaning 40 "m" 96
                )

            Expect.isTrue ok.Composable ok.Reason

            let activation =
                GeneratorTransfer.Check(
                    twoStage,
                    info DeltaKind.Activation 128 "a128" 128,
                    twoStage,
                    info DeltaKind.Activation 96 "a96" 96
                )

            Expect.isFalse activation.Composable "activation across widths"
            Expect.stringContains activation.Reason "width 128" "names the predictor's width"
            Expect.stringContains activation.Reason "width 96" "names the decoder's width"

            let otherPairs =
                GeneratorTransfer.Check(
                    twoStage,
                    info DeltaKind.Meaning 40 "m" 128,
                    twoStage,
                    info DeltaKind.Meaning 40 "n" 96
                )

            Expect.isFalse otherPairs.Composable "other pairs"

            let direct =
                GeneratorTransfer.Check(
                    GeneratorConfig(),
                    info DeltaKind.Meaning 40 "m" 128,
                    twoStage,
                    info DeltaKind.Meaning 40 "m" 96
                )

            Expect.isFalse direct.Composable "a direct run has no predictor"
            Expect.stringContains direct.Reason "TwoStage" "says why"

            let mixed =
                GeneratorTransfer.Check(
                    twoStage,
                    info DeltaKind.Activation 40 "m" 128,
                    twoStage,
                    info DeltaKind.Meaning 40 "m" 96
                )

            Expect.isFalse mixed.Composable "kinds differ"
        }

        test "TransferredGenerator decodes A's predicted delta with B's decoder, not B's own prediction" {
            use a = new TwoStageGenerator(twoStage, lora, Qwen2Presets.Micro, 5, 7, 1L)
            let microB = Qwen2Presets.Micro |> withFields [ "intermediate_size", jnode 40 ]
            use b = new TwoStageGenerator(twoStage, lora, microB, 5, 7, 2L)
            let composed = new TransferredGenerator(a, b)
            use c = torch.randn (2L, 3L, 5L)
            use out = composed.Generate c
            // Independently: B's decoder applied to A's δ̂ by hand, and B's own chain for contrast.
            use delta = a.PredictDelta c
            use expected = b.Decode delta
            use own = b.Generate c

            for KeyValue(path, m) in expected.Modules do
                Expect.isLessThan (maxAbsDiff out.Modules[path].B m.B) 1e-6 $"{path} B"
                Expect.isLessThan (maxAbsDiff out.Modules[path].A m.A) 1e-6 $"{path} A"

            let gate = "model.layers.0.mlp.down_proj"
            Expect.sequenceEqual out.Modules[gate].A.shape [| 2L; 2L; 40L |] "B's shapes"
            Expect.isGreaterThan (maxAbsDiff out.Modules[gate].B own.Modules[gate].B) 1e-6 "not B's own predictor"

            // Standardised: δ = μ_B + σ_B ⊙ (δ̂_A − μ_A) / σ_A with each run's teacher-delta statistics, by hand.
            use muA = torch.linspace (0.0, 0.6, 7L)
            use sdA = torch.linspace (0.5, 2.0, 7L)
            use muB = torch.linspace (-1.0, 1.0, 7L)
            use sdB = torch.linspace (0.1, 0.4, 7L)
            a.SetDeltaStatistics(muA, sdA)
            b.SetDeltaStatistics(muB, sdB)
            let standardized = new TransferredGenerator(a, b, true)
            use moved = standardized.Generate c
            use handDelta = muB + sdB * ((delta - muA) / sdA)
            use byHand = b.Decode handDelta

            for KeyValue(path, m) in byHand.Modules do
                Expect.isLessThan (maxAbsDiff moved.Modules[path].B m.B) 1e-5 $"{path} B, standardised"
                Expect.isLessThan (maxAbsDiff moved.Modules[path].A m.A) 1e-5 $"{path} A, standardised"

            use wide = new TwoStageGenerator(twoStage, lora, microB, 5, 8, 2L)

            let message =
                errorMessage<LlgbmException>(fun () -> new TransferredGenerator(a, wide) |> ignore)

            Expect.stringContains message "width 7" "names the widths"
        }

        testSequenced
        <| test
            "generator transfer: A's meaning predictor drives B's meaning decoder; activation runs are refused with the widths" {
            let root, inputsA, inputsB = fixture.Force()
            let runA = Path.Combine(root, "runs", "meaning-a")
            let runB = Path.Combine(root, "runs", "meaning-b")

            GeneratorRun.Train(small DeltaKind.Meaning 3L, inputsA, runA, encoding)
            |> ignore

            let nativeB =
                GeneratorRun.Train(small DeltaKind.Meaning 4L, inputsB, runB, encoding)

            let infoA = GeneratorRun.ReadRunFile runA
            let infoB = GeneratorRun.ReadRunFile runB
            // Two training tasks with two (prompt, answer) pairs each, on either backbone.
            Expect.equal (infoA.DeltaDim, infoB.DeltaDim) (4, 4) "meaning widths"
            Expect.equal (infoA.HiddenSize, infoB.HiddenSize) (Nullable 128, Nullable 96) "backbone widths"
            let result = GeneratorTransfer.Evaluate(runA, runB, (fun () -> encoding))
            Expect.isTrue result.Composable result.Reason

            let methods = result.Results |> Seq.map (fun r -> r.Method) |> Set.ofSeq

            Expect.equal
                methods
                (set [
                    "transfer"
                    "transfer-raw"
                    "native"
                    "base"
                    "oracle"
                    "mean-teacher"
                    "random"
                ])
                "methods"

            let transfer =
                result.Results
                |> Seq.find (fun r -> r.Method = "transfer" && r.Split = "held-out")

            Expect.equal transfer.Task "reverse" "B's held-out task"
            Expect.equal transfer.Accuracies.Count 2 "one accuracy per condition"

            let native =
                result.Results
                |> Seq.filter (fun r -> r.Method = "native")
                |> Seq.map (fun r -> r.Task, r.Split, r.Mean)
                |> List.ofSeq

            let written =
                nativeB.Results
                |> Seq.filter (fun r -> r.Method = "generated")
                |> Seq.map (fun r -> r.Task, r.Split, r.Mean)
                |> List.ofSeq

            Expect.equal native written "native: the decoder run's own results"
            Expect.isNonEmpty result.PredictorOwn "A's own results are carried along"

            let actA = Path.Combine(root, "runs", "activation-a")
            let actB = Path.Combine(root, "runs", "activation-b")

            GeneratorRun.Train(small DeltaKind.Activation 3L, inputsA, actA, encoding)
            |> ignore

            GeneratorRun.Train(small DeltaKind.Activation 4L, inputsB, actB, encoding)
            |> ignore

            let out = Path.Combine(root, "activation.json")

            let (code, _, err) =
                llgbm [
                    "generator"
                    "transfer"
                    "--predictor"
                    actA
                    "--decoder"
                    actB
                    "--out"
                    out
                ]

            Expect.notEqual code 0 "refused"
            Expect.stringContains err "width 128" "names A's width"
            Expect.stringContains err "width 96" "names B's width"
            Expect.isFalse (File.Exists out) "nothing written"

            let (code, _, err) =
                llgbm [
                    "generator"
                    "transfer"
                    "--predictor"
                    actA
                    "--decoder"
                    actB
                    "--out"
                    out
                    "--allow-incompatible"
                ]

            Expect.equal code 0 err
            let written = GeneratorTransfer.Read out
            Expect.isFalse written.Composable "recorded as not composable"
            Expect.equal (written.PredictorDeltaDim, written.DecoderDeltaDim) (128, 96) "the two widths"
        }
    ]
