/// Shared fixtures of the tests that need a base checkpoint, a task suite and a teacher pool on disk.
module LLGBM.Tests.TestPools

open System
open System.IO
open Expecto
open LLGBM.Tasks.Synthetic
open LLGBM.Teachers
open LLGBM.Tests.TestCli

/// A fresh directory under the temporary folder, named `prefix-GUID`, deleted when the test process exits.
let tempRoot (prefix: string) =
    let root =
        Path.Combine(Path.GetTempPath(), prefix + "-" + Guid.NewGuid().ToString("N"))

    Directory.CreateDirectory root |> ignore

    AppDomain.CurrentDomain.ProcessExit.Add(fun _ ->
        try
            Directory.Delete(root, true)
        with _ ->
            ())

    root

/// Under `root`: `base` (a freshly initialised tiny model with the byte tokenizer, through `llgbm base init`) and
/// `suite` (the synthetic suite with 40 training and 8 test examples per task). Returns (base, suite).
let tinyBaseAndSuite (root: string) =
    let baseDir = Path.Combine(root, "base")
    let (code, _, err) = llgbm [ "base"; "init"; "--preset"; "tiny"; "--out"; baseDir ]
    Expect.equal code 0 err
    let suite = Path.Combine(root, "suite")

    SyntheticSuiteFiles.Write(suite, SyntheticSuiteSettings(TrainCount = 40, TestCount = 8))
    |> ignore

    baseDir, suite

/// Trains a teacher pool under `root/teachers` for `tasks`: `steps` steps of batch 8, two adapters kept (the last
/// two at a distance of 2 steps). Returns the pool's directory.
let trainPool (root: string) (baseDir: string) (suite: string) (steps: int) (tasks: string array) =
    let pool = Path.Combine(root, "teachers")

    TeacherPool.Train(
        TeacherPoolSettings(
            BaseModel = baseDir,
            TasksRoot = suite,
            Output = pool,
            Training =
                TeacherTrainingSettings(
                    Steps = steps,
                    BatchSize = 8,
                    WarmupSteps = min 2 (steps - 1),
                    Checkpoints = 2,
                    Every = 2,
                    EvaluationLimit = 2
                ),
            Tasks = tasks
        )
    )
    |> ignore

    pool

/// Character statistics as a stand-in condition encoder (24 features: each character's code modulo 24, counted and
/// divided by the text's length): it only has to tell the tasks' texts apart, and needs no model files.
let characterEncoding =
    LLGBM.Generators.ConditionEncoding(
        "test-chars",
        fun (texts: Collections.Generic.IReadOnlyList<string>) ->
            let rows = [|
                for text in texts do
                    let v = Array.zeroCreate<float32> 24

                    for c in text do
                        v[int c % 24] <- v[int c % 24] + 1.0f

                    yield! v |> Array.map (fun x -> x / float32 (max 1 text.Length))
            |]

            TorchSharp.torch.tensor(rows).reshape(int64 texts.Count, 24L)
    )
