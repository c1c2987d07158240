module LLGBM.Tests.GeneratedDeltasTests

open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Checkpoints
open LLGBM.Cli.Commands
open LLGBM.Delta
open LLGBM.Generators
open LLGBM.Tasks
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Experiments

/// Character statistics as a stand-in encoder (24 features).
let private encoding = TestPools.characterEncoding

/// A tiny base (random weights), a small suite, teachers for upper, add-2 (training) and reverse (held out), and a
/// generator run of 4 steps trained on them.
let private fixture =
    lazy
        (let root = TestPools.tempRoot "llgbm-gd"
         let baseDir, suite = TestPools.tinyBaseAndSuite root

         let pool =
             TestPools.trainPool root baseDir suite 4 [| "upper"; "add-2"; "reverse" |]

         let inputs = GeneratorInputs(baseDir, suite, pool, Path.Combine(root, "deltas"))

         let config =
             GeneratorConfig(
                 Name = "gd",
                 Seed = 3L,
                 HiddenSize = 32,
                 EmbeddingSize = 8,
                 ConditionPrompts = 4,
                 ConditionPool = 16,
                 Weight = LossWeight.Constant 1.0,
                 Delta = LossWeight.Constant 1.0,
                 Probes = 2,
                 Steps = 4,
                 AdaptersPerStep = 2,
                 Microbatch = 2,
                 LearningRate = 1e-2,
                 WarmupSteps = 0,
                 LogEvery = 2,
                 CheckpointEvery = 4,
                 EvalEvery = 0,
                 EvalBatches = 1,
                 EvalLimit = 2,
                 TrainTasks = [| "upper"; "add-2" |],
                 TestTasks = [| "reverse" |]
             )

         let run = Path.Combine(root, "run")
         GeneratorRun.Train(config, inputs, run, encoding) |> ignore
         root, baseDir, suite, pool, run, config)

let private values (t: torch.Tensor) =
    t.detach().to_type(torch.float32).cpu().data<float32>().ToArray()

/// Equal up to float32 rounding: within 1e-4 of the vector's largest magnitude.
let private expectClose (actual: float32[]) (wanted: float32[]) message =
    Expect.equal actual.Length wanted.Length $"{message}: dimension"
    let scale = wanted |> Array.map (fun x -> abs (float x)) |> Array.max

    for i in 0 .. actual.Length - 1 do
        Expect.isLessThanOrEqual
            (abs (float actual[i] - float wanted[i]))
            (1e-4 * scale + 1e-9)
            $"{message}: element {i} ({actual[i]} vs {wanted[i]})"

[<Tests>]
let tests =
    testSequenced
    <| testList "GeneratedDeltas" [
        test "generated adapters: one per task and batch, split by the run, embedded as the adapter the generator gives" {
            let _, baseDir, suite, pool, run, config = fixture.Force()
            let tasks = TaskSuite.LoadAll suite
            let probes = ProbeSet.Generic 2

            use embedder =
                new GeneratedAdapterEmbedder(baseDir, pool, probes, DeltaSpec.Default)

            Expect.equal
                (embedder.TeacherDeltas.Keys |> Seq.sort |> List.ofSeq)
                [ "add-2"; "reverse"; "upper" ]
                "teachers"

            let set = embedder.Embed(run, tasks, encoding, 2, 5L)
            Expect.equal set.Step 4 "latest checkpoint"

            Expect.sequenceEqual
                (set.Adapters |> Seq.map (fun a -> a.Task, a.Split, a.Batch))
                [
                    "upper", "train", 0
                    "upper", "train", 1
                    "add-2", "train", 0
                    "add-2", "train", 1
                    "reverse", "test", 0
                    "reverse", "test", 1
                ]
                "run order: training tasks, then held-out tasks"

            // Independently: draw the same batch, generate with the run's generator, and take the delta and dW of it.
            use model = Qwen2Checkpoint.Load baseDir
            model.eval () |> ignore
            let tokenizer = Tokenizers.Load baseDir
            use generator = GeneratorRun.LoadGenerator(run, model.Config)

            use deltaEmbedder =
                new DeltaEmbedder(model, probes.Tokenize tokenizer, DeltaSpec.Default)

            for index in [ 1; 4 ] do
                let e = set.Adapters[index]
                let task = tasks |> Seq.find (fun t -> t.Spec.Name = e.Task)

                let batch =
                    PromptBatches.Sample(task, 4, PromptBatches.BatchSeed(5L, e.Batch), config.ConditionMode)

                let texts = batch.Items |> Seq.map ConditionBank.Text |> Array.ofSeq
                use lora = GeneratorRun.GenerateOne(generator, encoding, texts)
                use delta = deltaEmbedder.ComputeNoGrad lora
                expectClose e.Delta (values delta) $"{e.Task} batch {e.Batch}: delta"

                let first =
                    lora.Modules.Keys
                    |> Seq.sortWith (fun a b -> System.String.CompareOrdinal(a, b))
                    |> Seq.head

                let m = lora.Modules[first]
                let a, b = values m.A, values m.B
                let r, inDim = int m.A.shape[0], int m.A.shape[1]

                let naive = [|
                    for o in 0 .. int m.B.shape[0] - 1 do
                        for i in 0 .. inDim - 1 ->
                            float32 (
                                m.Scale
                                * Seq.sum [ for k in 0 .. r - 1 -> float b[o * r + k] * float a[k * inDim + i] ]
                            )
                |]

                expectClose e.DeltaWeight[0 .. naive.Length - 1] naive $"{e.Task}: the first module's dW"
                Expect.equal e.LoraWeights[0 .. a.Length - 1] a $"{e.Task}: A of the first module first"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> embedder.Embed(run, tasks, encoding, 0) |> ignore))
                "at least 1 prompt batch"
                "no batches"
        }

        test "the run's report: silhouettes of four representations and teacher matches per split" {
            let _, baseDir, suite, pool, run, _ = fixture.Force()
            let tasks = TaskSuite.LoadAll suite

            use embedder =
                new GeneratedAdapterEmbedder(baseDir, pool, ProbeSet.Generic 2, DeltaSpec.Default)

            let set = embedder.Embed(run, tasks, encoding, 2, 0L)

            let result =
                GeneratedDeltaStudy.Evaluate(set, embedder, DeltaQualityStudy.Mixtures tasks)

            Expect.equal (result.Representations |> Array.map _.Name).Length 4 "four representations"
            // Held-out: only reverse (one domain), so only the level over every adapter.
            Expect.sequenceEqual (result.Silhouettes |> Seq.map _.Level |> Seq.distinct) [ "all" ] "levels"
            Expect.sequenceEqual (result.TeacherMatch |> Seq.map _.Subset) [ "all"; "train"; "test" ] "subsets"
            let teachers = [| for kv in embedder.TeacherDeltas -> kv.Key, kv.Value |]

            let wantedOwn =
                set.Adapters
                |> Seq.averageBy (fun a -> Metrics.cosine a.Delta (embedder.TeacherDeltas[a.Task]))

            Expect.floatClose
                Accuracy.medium
                result.TeacherMatch[0].Summary.Own
                wantedOwn
                "mean cosine to the own teacher"

            Expect.equal result.TeacherMatch[2].Summary.Points 2 "reverse's two adapters"
            Expect.equal teachers.Length 3 "three teachers"
        }
    ]
