module LLGBM.Tests.RetrieveMergeTests

open System
open System.IO
open System.Text.Json
open Expecto
open LLGBM
open LLGBM.Algebra
open LLGBM.Evaluation
open LLGBM.Tasks
open LLGBM.Tasks.Synthetic
open LLGBM.Teachers
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels

let private entry task step (delta: float32[]) : RetrieveMerge.PoolEntry = {
    Task = task
    Domain = "test"
    Step = step
    AdapterDir = $"{task}/step-{step}"
    Delta = delta
}

/// A pool of five teachers of four tasks, each with a 2-D delta and a 4-entry task vector.
let private pool = [|
    entry "a" 1 [| 1.0f; 0.0f |], [| 1.0; -2.0; 0.5; 3.0 |]
    entry "a" 2 [| 0.95f; 0.05f |], [| 1.1; -2.0; 0.4; 3.0 |]
    entry "b" 1 [| 0.8f; 0.6f |], [| -1.5; 1.0; 0.2; 2.0 |]
    entry "c" 1 [| 0.0f; 1.0f |], [| 0.5; -0.5; -2.5; -1.0 |]
    entry "d" 1 [| -1.0f; 0.0f |], [| 9.0; 9.0; 9.0; 9.0 |]
|]

let private vectorOfEntry (e: RetrieveMerge.PoolEntry) =
    pool |> Array.find (fun (p, _) -> p.AdapterDir = e.AdapterDir) |> snd

/// An evaluation carrying `accuracy`, for fake evaluators.
let private evaluation (task: string) (accuracy: float) =
    TaskEvaluation(
        Task = task,
        Domain = "test",
        Model = "fake",
        Format = "bare",
        Metric = "exact_match",
        Accuracy = accuracy,
        Correct = 0,
        N = 1
    )

let private condition task seed =
    PromptBatch(task, seed, PromptBatchMode.PromptsOnly, [| PromptBatchItem(0, "p", null) |])

[<Tests>]
let tests =
    testList "RetrieveMerge" [
        test "RetrieveMerge.run retrieves one adapter per task nearest to δ̂ and merges them as the naive recipes do" {
            let merged = ResizeArray<string * float[]>()

            let evaluate (label: string) (tau: TaskVector) =
                merged.Add((label, entries tau))
                evaluation "held-out" 0.5

            let loaded = Collections.Generic.Dictionary<string, TaskVector>()

            let load (e: RetrieveMerge.PoolEntry) =
                match loaded.TryGetValue e.AdapterDir with
                | true, v -> v
                | _ ->
                    let v = vectorOf (vectorOfEntry e)
                    loaded[e.AdapterDir] <- v
                    v

            let predict _ : RetrieveMerge.Prediction = {
                Delta = [| 1.0f; 0.1f |]
                Source = "fixed"
            }

            let settings = {
                RetrieveMerge.Settings.Default with
                    Merges = [|
                        Merge.Settings.Of Merge.Linear
                        {
                            Merge.Settings.Of Merge.Ties with
                                Density = 0.5
                        }
                    |]
            }

            let outcome =
                RetrieveMerge.run predict load evaluate settings (Array.map fst pool) (condition "held-out" 1L)

            // cos with (1, 0.1): a@1 0.995, a@2 ≈ 0.998, b 0.854, c 0.0995, d −0.995: a@2 stands for task a.
            Expect.equal
                (outcome.Retrieved |> List.map (fun h -> string h.Item))
                [ "a@2"; "b@1"; "c@1" ]
                "one per task, nearest first"

            Expect.sequenceEqual outcome.Weights [| 1.0 / 3.0; 1.0 / 3.0; 1.0 / 3.0 |] "uniform"

            let chosen =
                outcome.Retrieved |> List.map (fun h -> vectorOfEntry h.Item) |> Array.ofList

            // Signs of a@2, b@1, c@1 per coordinate: (+ − +), (− + −), (+ + −), (+ + −): every coordinate conflicts.
            // Trimmed to the top half by magnitude: (0 −2 0 3), (−1.5 0 0 2), (0 0 −2.5 −1): only the last conflicts.
            Expect.floatClose Accuracy.veryHigh outcome.SignConflicts 1.0 "sign conflicts of the retrieved vectors"
            Expect.floatClose Accuracy.veryHigh outcome.TrimmedSignConflicts 0.25 "after the TIES trim at density 0.5"
            Expect.equal outcome.Results.Length 2 "two merges"
            Expect.equal merged.Count 2 "two evaluations"
            let (averageLabel, average) = merged[0]
            let (tiesLabel, tiesMerge) = merged[1]
            expectClose 1e-6 average (weightedAverage [| 1.0; 1.0; 1.0 |] chosen) "the average"
            expectClose 1e-6 tiesMerge (ties 0.5 chosen) "TIES at 0.5"
            Expect.stringContains averageLabel "linear" "the label names the merge"
            Expect.stringContains tiesLabel "ties (density 0.5" "the label names the merge"
            Expect.stringContains tiesLabel "a@2 0.333" "and the teachers with their weights"

            let all =
                RetrieveMerge.run
                    predict
                    load
                    evaluate
                    {
                        settings with
                            OnePerTask = false
                            K = 2
                    }
                    (Array.map fst pool)
                    (condition "held-out" 2L)

            Expect.equal (all.Retrieved |> List.map (fun h -> string h.Item)) [ "a@2"; "a@1" ] "nearest checkpoints"
            Expect.equal all.SignConflicts 0.0 "two checkpoints of one task agree in sign everywhere"

            for v in loaded.Values do
                v.Dispose()
        }

        test "RetrieveMerge.summarise averages each merge over at least three conditions" {
            let outcome seed (accuracies: float list) : RetrieveMerge.Outcome = {
                Condition = condition "t" seed
                Predicted = { Delta = [||]; Source = "" }
                Retrieved = []
                Weights = [||]
                SignConflicts = 0.0
                TrimmedSignConflicts = 0.0
                Results = [
                    for (m, a) in List.zip [ Merge.Settings.Of Merge.Linear; Merge.Settings.Of Merge.Ties ] accuracies ->
                        {
                            Merge = m
                            Evaluation = evaluation "t" a
                        }
                ]
            }

            let outcomes = [ outcome 1L [ 0.2; 0.5 ]; outcome 2L [ 0.4; 0.5 ]; outcome 3L [ 0.6; 0.8 ] ]
            let settings = RetrieveMerge.Settings.Default
            let summary = RetrieveMerge.summarise "t" settings outcomes
            let (_, linear) = summary.ByMerge[0]
            let (_, tiesAccuracy) = summary.ByMerge[1]
            Expect.floatClose Accuracy.high linear.Mean 0.4 "mean 0.2, 0.4, 0.6"
            Expect.floatClose Accuracy.high linear.Std 0.2 "sample std"
            Expect.floatClose Accuracy.high tiesAccuracy.Mean 0.6 "mean 0.5, 0.5, 0.8"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> RetrieveMerge.summarise "t" settings outcomes[..1] |> ignore))
                "at least 3"
                "two conditions are not enough"
        }

        test "llgbm retrieve-merge runs the B2 baseline on a tiny pool and leaves the held-out task out" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let baseDir, suite = TestPools.tinyBaseAndSuite root

                let teachers =
                    TestPools.trainPool root baseDir suite 4 [| "upper"; "reverse"; "add-2" |]

                let deltas = Path.Combine(root, "deltas")

                let (code, _, err) =
                    llgbm [
                        "deltas"
                        "compute"
                        "--base"
                        baseDir
                        "--teachers"
                        teachers
                        "--out"
                        deltas
                        "--generic"
                        "2"
                    ]

                Expect.equal code 0 err
                let output = Path.Combine(root, "b2.json")

                let (code, out, err) =
                    llgbm [
                        "retrieve-merge"
                        "--base"
                        baseDir
                        "--tasks"
                        suite
                        "--teachers"
                        teachers
                        "--deltas"
                        deltas
                        "--generic"
                        "2"
                        "--task"
                        "upper"
                        "--k"
                        "2"
                        "--batch-size"
                        "3"
                        "--library-batches"
                        "2"
                        "--limit"
                        "3"
                        "--out"
                        output
                    ]

                Expect.equal code 0 err
                Expect.stringContains out "mean teacher (control)" "the table"
                Expect.stringContains err "condition 3/3" "progress"
                use doc = JsonDocument.Parse(File.ReadAllText output)
                let json = doc.RootElement
                Expect.equal (json.GetProperty("pool").GetInt32()) 4 "2 tasks × 2 adapters, upper left out"

                for outcome in json.GetProperty("outcomes").EnumerateArray() do
                    let retrieved = [
                        for r in outcome.GetProperty("retrieved").EnumerateArray() -> r.GetProperty("task").GetString()
                    ]

                    Expect.equal (List.sort retrieved) [ "add-2"; "reverse" ] "one adapter of each other task"
                    let raw = outcome.GetProperty("sign_conflicts").GetDouble()
                    let trimmed = outcome.GetProperty("sign_conflicts_trimmed").GetDouble()
                    Expect.isTrue (raw > 0.0 && raw <= 1.0) $"two tasks' adapters disagree in sign somewhere ({raw})"
                    Expect.isTrue (trimmed <= raw) $"trimming only removes signs ({trimmed} ≤ {raw})"

                let meanConflicts =
                    [
                        for o in json.GetProperty("outcomes").EnumerateArray() ->
                            o.GetProperty("sign_conflicts").GetDouble()
                    ]
                    |> List.average

                Expect.floatClose
                    Accuracy.veryHigh
                    (json.GetProperty("sign_conflicts").GetDouble())
                    meanConflicts
                    "the run's rate is the mean over conditions"

                let merges = [ for m in json.GetProperty("merges").EnumerateArray() -> m ]

                Expect.equal
                    (merges |> List.map (fun m -> m.GetProperty("method").GetString()))
                    [ "linear"; "ties" ]
                    "merges"

                for m in merges do
                    let accuracies = [ for a in m.GetProperty("accuracies").EnumerateArray() -> a.GetDouble() ]
                    Expect.equal accuracies.Length 3 "three conditions"

                    ()

                let excluded = Path.Combine(root, "b2-excluded.json")

                let (code, _, err) =
                    llgbm [
                        "retrieve-merge"
                        "--base"
                        baseDir
                        "--tasks"
                        suite
                        "--teachers"
                        teachers
                        "--deltas"
                        deltas
                        "--generic"
                        "2"
                        "--task"
                        "upper"
                        "--exclude"
                        "reverse"
                        "--k"
                        "1"
                        "--batch-size"
                        "3"
                        "--library-batches"
                        "2"
                        "--limit"
                        "2"
                        "--merges"
                        "linear"
                        "--out"
                        excluded
                    ]

                Expect.equal code 0 err
                use doc2 = JsonDocument.Parse(File.ReadAllText excluded)

                Expect.equal
                    (doc2.RootElement.GetProperty("pool").GetInt32())
                    2
                    "--exclude reverse: only add-2's 2 adapters"

                for m in merges do
                    let accuracies = [ for a in m.GetProperty("accuracies").EnumerateArray() -> a.GetDouble() ]

                    Expect.floatClose
                        Accuracy.high
                        (m.GetProperty("mean").GetDouble())
                        (List.average accuracies)
                        "mean"

                // The base row agrees with llgbm eval on the same examples.
                let evalOut = Path.Combine(root, "eval.json")

                let (code, _, err) =
                    llgbm [
                        "eval"
                        "--model"
                        baseDir
                        "--tasks"
                        suite
                        "--task"
                        "upper"
                        "--format"
                        "bare"
                        "--limit"
                        "3"
                        "--out"
                        evalOut
                    ]

                Expect.equal code 0 err

                let evaluated = EvaluationResults.Read evalOut

                Expect.floatClose
                    Accuracy.high
                    (json.GetProperty("base").GetDouble())
                    evaluated[0].Accuracy
                    "base accuracy")
        }
    ]
