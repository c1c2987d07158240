module LLGBM.Tests.TeacherPoolTests

open System.Collections.Generic
open System.IO
open System.Security.Cryptography
open Expecto
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Tasks
open LLGBM.Tasks.Synthetic
open LLGBM.Teachers
open LLGBM.Tests.TestModels
open TorchSharp

let private sha256 (path: string) =
    System.Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes path))

/// A tiny base (random weights, byte-level tokenizer) and a small suite under `root`.
let private fixture (root: string) =
    let baseDir = Path.Combine(root, "base")
    use out = new StringWriter()
    use err = new StringWriter()

    let code =
        LLGBM.Cli.LlgbmCommand.Run([| "base"; "init"; "--preset"; "tiny"; "--out"; baseDir |], out, err)

    Expect.equal code 0 (err.ToString())
    let suite = Path.Combine(root, "suite")

    SyntheticSuiteFiles.Write(suite, SyntheticSuiteSettings(TrainCount = 40, TestCount = 8))
    |> ignore

    baseDir, suite

let private small =
    TeacherTrainingSettings(Steps = 8, BatchSize = 8, WarmupSteps = 2, Checkpoints = 3, Every = 2, EvaluationLimit = 4)

[<Tests>]
let tests =
    testSequenced
    <| testList "TeacherPool" [
        test "TeacherTrainingSettings: adapters are kept every K steps in the tail, ending at the last step" {
            Expect.sequenceEqual (small.CheckpointSteps()) [ 4; 6; 8 ] "3 every 2 of 8"
            let bad = TeacherTrainingSettings(Steps = 8, Checkpoints = 5, Every = 2)

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> bad.Validate() |> ignore))
                "more than 8 steps"
                "too many"
        }

        test "Train: PEFT adapters per kept step, manifests with their hashes, resumable and sharded" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let baseDir, suite = fixture root
                let out = Path.Combine(root, "teachers")
                let tasks = [| "upper"; "add-2"; "largest" |]

                let settings shard =
                    TeacherPoolSettings(
                        BaseModel = baseDir,
                        TasksRoot = suite,
                        Output = out,
                        Training = small,
                        Tasks = tasks,
                        ShardIndex = shard,
                        ShardCount = 2
                    )

                // tasks in name order: add-2, largest, upper -> shard 0 gets add-2 and upper, shard 1 gets largest
                let first = TeacherPool.Train(settings 0)
                Expect.sequenceEqual (first |> Seq.map (fun m -> m.Task)) [ "add-2"; "upper" ] "shard 0 of 2"

                Expect.sequenceEqual
                    ((TeacherPool.ReadManifest out) |> Seq.map (fun m -> m.Task))
                    [ "add-2"; "upper" ]
                    "manifest so far"

                let second = TeacherPool.Train(settings 1)
                Expect.sequenceEqual (second |> Seq.map (fun m -> m.Task)) [ "largest" ] "shard 1 of 2"
                let all = TeacherPool.ReadManifest out

                Expect.sequenceEqual
                    (all |> Seq.map (fun m -> m.Task))
                    [ "add-2"; "largest"; "upper" ]
                    "the merged manifest"

                for m in all do
                    Expect.sequenceEqual
                        (m.Checkpoints |> Seq.map (fun c -> c.Step))
                        [ 4; 6; 8 ]
                        $"{m.Task}: kept steps"

                    for c in m.Checkpoints do
                        let dir = Path.Combine(out, c.Adapter)

                        Expect.equal
                            c.AdapterSha256
                            (sha256 (Path.Combine(dir, "adapter_model.safetensors")))
                            "weights hash"

                        Expect.equal c.ConfigSha256 (sha256 (Path.Combine(dir, "adapter_config.json"))) "config hash"
                        Expect.equal c.TestCount 4 "scored on the test split"
                        use model = Qwen2Checkpoint.Load baseDir
                        let struct (config, adapter) = PeftAdapter.Load(dir, model.Config)
                        use adapter = adapter
                        Expect.equal config.Rank 8 "rank"

                        Expect.isGreaterThan
                            (adapter.Modules.Values |> Seq.sumBy (fun a -> a.B.abs().sum().item<float32>()))
                            0f
                            "trained: B is no longer zero"

                let stamp = File.GetLastWriteTimeUtc(Path.Combine(out, "upper", "teacher.json"))
                let again = TeacherPool.Train(settings 0)
                Expect.equal again.Count 2 "the shard's tasks reported"

                Expect.equal
                    (File.GetLastWriteTimeUtc(Path.Combine(out, "upper", "teacher.json")))
                    stamp
                    "finished tasks are not retrained"

                let changed =
                    TeacherPoolSettings(
                        BaseModel = baseDir,
                        TasksRoot = suite,
                        Output = out,
                        Training =
                            TeacherTrainingSettings(
                                Steps = 8,
                                BatchSize = 8,
                                WarmupSteps = 2,
                                Checkpoints = 2,
                                Every = 3,
                                EvaluationLimit = 4,
                                Seed = 1L
                            ),
                        Tasks = [| "upper" |]
                    )

                TeacherPool.Train changed |> ignore

                Expect.isGreaterThan
                    (File.GetLastWriteTimeUtc(Path.Combine(out, "upper", "teacher.json")))
                    stamp
                    "other settings: retrained"

                Expect.sequenceEqual
                    (Directory.GetDirectories(Path.Combine(out, "upper"))
                     |> Array.map Path.GetFileName
                     |> Array.sort)
                    [| "step-00005"; "step-00008" |]
                    "adapters of the earlier run are gone")
        }

        test "Train with several teachers at once writes the pool one-at-a-time training writes, up to rounding" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let baseDir, suite = fixture root
                let tasks = [| "upper"; "add-2"; "largest" |]

                let pool name atOnce =
                    let out = Path.Combine(root, name)

                    TeacherPool.Train(
                        TeacherPoolSettings(
                            BaseModel = baseDir,
                            TasksRoot = suite,
                            Output = out,
                            Training = small,
                            Tasks = tasks,
                            TeachersAtOnce = atOnce
                        )
                    )
                    |> ignore

                    out, TeacherPool.ReadManifest out

                let aloneDir, alone = pool "alone" 1
                let togetherDir, together = pool "together" 3

                Expect.sequenceEqual
                    [ for m in together -> m.Task, [ for c in m.Checkpoints -> c.Step, c.Adapter ] ]
                    [ for m in alone -> m.Task, [ for c in m.Checkpoints -> c.Step, c.Adapter ] ]
                    "the same tasks, steps and adapter folders"

                use model = Qwen2Checkpoint.Load baseDir

                for m in alone do
                    for c in m.Checkpoints do
                        let struct (_, a) =
                            PeftAdapter.Load(Path.Combine(aloneDir, c.Adapter), model.Config)

                        use a = a

                        let struct (_, b) =
                            PeftAdapter.Load(Path.Combine(togetherDir, c.Adapter), model.Config)

                        use b = b

                        // ΔW = scale · B · A, the adapter's effect, agrees to 1e-5; the factors to 1e-4, since AdamW's
                        // first, sign-like steps on A while B is near 0 magnify the rounding of the batched pass.
                        for KeyValue(path, expected) in a.Modules do
                            let actual = b.Modules[path]
                            use dwA = expected.DeltaWeight()
                            use dwB = actual.DeltaWeight()
                            Expect.isLessThan (maxAbsDiff dwB dwA) 1e-5 $"{c.Adapter} {path} ΔW"
                            Expect.isLessThan (maxAbsDiff actual.A expected.A) 1e-4 $"{c.Adapter} {path} A"
                            Expect.isLessThan (maxAbsDiff actual.B expected.B) 1e-4 $"{c.Adapter} {path} B"

                    let byTask = together |> Seq.find (fun t -> t.Task = m.Task)

                    for c, d in Seq.zip m.Checkpoints byTask.Checkpoints do
                        Expect.floatClose
                            { absolute = 1e-5; relative = 1e-5 }
                            d.TrainLoss
                            c.TrainLoss
                            $"{c.Adapter}: loss")
        }

        test "TeacherTrainer.Train: the training loss falls and the base model is left untouched" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let baseDir, suite = fixture root
                use model = Qwen2Checkpoint.Load baseDir

                let before =
                    model.state_dict ()
                    |> Seq.map (fun kv -> kv.Key, kv.Value.clone ())
                    |> Map.ofSeq

                let tokenizer = LLGBM.Text.Tokenizers.Load baseDir
                let task = TaskDirectory.Load(Path.Combine(suite, "upper"))
                let losses = ResizeArray()

                let settings =
                    TeacherTrainingSettings(Steps = 40, BatchSize = 16, WarmupSteps = 4, Checkpoints = 2, Every = 20)

                TeacherTrainer.Train(model, tokenizer, task, settings, (fun _ _ loss -> losses.Add loss))
                Expect.equal losses.Count 2 "two kept adapters"
                Expect.isLessThan losses[1] losses[0] "the second half's loss is lower"

                for KeyValue(name, t) in model.state_dict () do
                    Expect.equal (maxAbsDiff t before[name]) 0.0 $"{name} unchanged"
                    Expect.isTrue t.requires_grad $"{name}: requires_grad restored")
        }

        test "teachers train --shard rejects a malformed shard" {
            use out = new StringWriter()
            use err = new StringWriter()

            let code =
                LLGBM.Cli.LlgbmCommand.Run([| "teachers"; "train"; "--shard"; "2/2" |], out, err)

            Expect.equal code 2 "exit code"
            Expect.stringContains (err.ToString()) "0 ≤ i < n" "explains"
        }
        test "TeacherTrainer.TrainBatched trains each teacher as its own run does, clipping and AdamW state included" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let baseDir, suite = fixture root
                use model = Qwen2Checkpoint.Load baseDir
                let tokenizer = LLGBM.Text.Tokenizers.Load baseDir
                // Tasks of different lengths (so the batched rows are padded further than one task's), and a clip norm
                // small enough that every step clips: a clip over all teachers together would differ.
                let tasks =
                    [| "upper"; "add-2"; "largest" |]
                    |> Array.map (fun n -> TaskDirectory.Load(Path.Combine(suite, n)))

                let settings =
                    TeacherTrainingSettings(
                        Steps = 6,
                        BatchSize = 4,
                        WarmupSteps = 1,
                        Checkpoints = 2,
                        Every = 2,
                        ClipNorm = 0.05
                    )

                // What is compared: every module's factors and its ΔW = scale · B · A (the adapter's effect).
                let keep (t: int) step (adapter: LoraSet) (loss: float) =
                    let factors = [
                        for KeyValue(path, m) in adapter.Modules do
                            yield $"{path}.A", m.A.detach().clone().DetachFromDisposeScope()
                            yield $"{path}.B", m.B.detach().clone().DetachFromDisposeScope()
                            yield $"{path}.ΔW", m.DeltaWeight().detach().DetachFromDisposeScope()
                    ]

                    (t, step), (factors, loss)

                let alone = Dictionary<int * int, (string * torch.Tensor) list * float>()

                for t, task in Array.indexed tasks do
                    TeacherTrainer.Train(
                        model,
                        tokenizer,
                        task,
                        settings,
                        (fun step adapter loss ->
                            let key, value = keep t step adapter loss
                            alone[key] <- value)
                    )

                let together = Dictionary<int * int, (string * torch.Tensor) list * float>()

                TeacherTrainer.TrainBatched(
                    model,
                    tokenizer,
                    tasks,
                    settings,
                    (fun t step adapter loss ->
                        let key, value = keep t step adapter loss
                        together[key] <- value)
                )

                Expect.sequenceEqual (together.Keys |> Seq.sort) (alone.Keys |> Seq.sort) "the same teachers and steps"

                for KeyValue(key, (factors, loss)) in alone do
                    let batchedFactors, batchedLoss = together[key]
                    Expect.floatClose { absolute = 1e-5; relative = 1e-5 } batchedLoss loss $"{key}: mean loss"

                    // Not bit for bit: the batched pass pads further and multiplies in other shapes, and AdamW's first,
                    // sign-like steps on A (while B is near 0) magnify that rounding with the learning rate.
                    for (name, expected), (_, actual) in List.zip factors batchedFactors do
                        Expect.isLessThan (maxAbsDiff actual expected) 1e-5 $"{key} {name}"

                    let bNorm =
                        factors
                        |> List.filter (fun (n, _) -> n.EndsWith ".B")
                        |> List.sumBy (fun (_, b) -> b.abs().sum().item<float32>() |> float)

                    Expect.isGreaterThan bNorm 0.0 $"{key}: the adapter has moved from its no-op start")
        }
        test "Shared initialisation starts every teacher from one A; shared-frozen (LoRA-FA) keeps it and trains B" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let baseDir, suite = fixture root
                use model = Qwen2Checkpoint.Load baseDir
                let tokenizer = LLGBM.Text.Tokenizers.Load baseDir

                let tasks =
                    [| "upper"; "add-2" |]
                    |> Array.map (fun n -> TaskDirectory.Load(Path.Combine(suite, n)))

                let perTask = TeacherTrainingSettings()
                let shared = TeacherTrainingSettings(Initialisation = TeacherInitialisation.Shared)

                Expect.notEqual
                    (perTask.InitialisationSeed "upper")
                    (perTask.InitialisationSeed "add-2")
                    "per task: own draws"

                Expect.equal (shared.InitialisationSeed "upper") (shared.InitialisationSeed "add-2") "shared: one draw"
                Expect.notEqual (perTask.Key()) (shared.Key()) "the pool's key tells them apart"

                let frozen =
                    TeacherTrainingSettings(
                        Steps = 4,
                        BatchSize = 4,
                        WarmupSteps = 1,
                        Checkpoints = 1,
                        Every = 1,
                        Initialisation = TeacherInitialisation.SharedFrozen
                    )

                use initial =
                    LoraSet.Initialize(frozen.Lora, model.Config, int64 (frozen.InitialisationSeed "upper"))

                let check (label: string) (adapter: LoraSet) =
                    for KeyValue(path, m) in adapter.Modules do
                        Expect.equal
                            (maxAbsDiff m.A initial.Modules[path].A)
                            0.0
                            $"{label} {path}: A is the shared draw"

                    Expect.isGreaterThan
                        (adapter.Modules.Values
                         |> Seq.sumBy (fun m -> m.B.abs().sum().item<float32>() |> float))
                        0.0
                        $"{label}: B has learned"

                for task in tasks do
                    TeacherTrainer.Train(
                        model,
                        tokenizer,
                        task,
                        frozen,
                        (fun _ adapter _ -> check task.Spec.Name adapter)
                    )

                TeacherTrainer.TrainBatched(
                    model,
                    tokenizer,
                    tasks,
                    frozen,
                    (fun t _ adapter _ -> check $"batched {t}" adapter)
                ))
        }
    ]
