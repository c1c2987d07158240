module LLGBM.Tests.MixtureExperimentTests

open System
open System.IO
open System.Text.Json
open Expecto
open LLGBM.Experiments
open LLGBM.Cli.Pipeline
open LLGBM.Tasks
open LLGBM.Tasks.Synthetic
open LLGBM.Tests.TestCli

let private close (actual: float) (expected: float) (message: string) =
    Expect.floatClose Accuracy.medium actual expected message

[<Tests>]
let tests =
    testList "MixtureExperiment" [
        test "MixtureScores pools both components' examples for the mixture's accuracy" {
            let s = MixtureScores(3, 4, 1, 6)
            close s.First 0.75 "first"
            close s.Second (1.0 / 6.0) "second"
            close s.Mixture 0.4 "(3 + 1) / (4 + 6)"
        }

        test "DeltaScores: cosines with the sum, the components and the mixture teacher, the gain and the norm" {
            let d =
                DeltaScores.Of(
                    [| 1.0f; 1.0f; 0.0f |],
                    [| 1.0f; 0.0f; 0.0f |],
                    [| 0.0f; 2.0f; 0.0f |],
                    [| 0.0f; 1.0f; 1.0f |]
                )
            // δ_A + δ_B = (1, 2, 0): cos = 3 / (√2 · √5).
            close d.CosineWithSum (3.0 / (sqrt 2.0 * sqrt 5.0)) "cos with the sum"
            close d.CosineWithFirst (1.0 / sqrt 2.0) "cos with A"
            close d.CosineWithSecond (1.0 / sqrt 2.0) "cos with B"
            close d.Gain (3.0 / (sqrt 2.0 * sqrt 5.0) - 1.0 / sqrt 2.0) "gain"
            close d.CosineWithMixtureTeacher 0.5 "1 / (√2 · √2)"
            close d.Norm (sqrt 2.0) "norm"
        }

        test "MixtureResultJson.Std is the sample standard deviation" {
            close (MixtureResultJson.Std [| 1.0; 2.0; 3.0; 4.0 |]) (sqrt (5.0 / 3.0)) "Σ (x − 2.5)² = 5, over 3"
            close (MixtureResultJson.Std [| 0.7 |]) 0.0 "one value"
        }

        test
            "Both plans mix training tasks of different domains and generation kind, with generator runs the plan trains" {
            let suite = SyntheticSuite.Tasks() |> Seq.map (fun t -> t.Name, t.Spec) |> dict

            let training =
                SyntheticSuite.Splits()
                |> Seq.find (fun s -> s.Name = "default")
                |> (fun s -> set s.Train)

            for plan in [ PipelinePlan.Full; PipelinePlan.Reduced ] do
                let runs =
                    plan.Generators |> Seq.map (fun r -> PipelinePlan.RunName(r.Config, r)) |> set

                Expect.isNonEmpty plan.Mixtures.Pairs "at least one mixture"

                for struct (a, b) in plan.Mixtures.Pairs do
                    Expect.isTrue (training.Contains a && training.Contains b) $"{a}, {b}: training tasks"
                    Expect.notEqual suite[a].Domain suite[b].Domain $"{a}, {b}: different domains"
                    Expect.equal suite[a].Kind TaskKind.Generation $"{a}: generation"
                    Expect.equal suite[b].Kind TaskKind.Generation $"{b}: generation"

                for g in plan.Mixtures.Generators do
                    Expect.isTrue (runs.Contains g) $"{g} is a run of the plan"

                match plan.Mixtures.TwoStage with
                | null -> ()
                | t -> Expect.isTrue (runs.Contains t) $"{t} is a run of the plan"

            Expect.equal PipelinePlan.Full.Mixtures.Pairs.Count 3 "three mixtures in the full plan"
        }

        test "The reduced plan's mixtures use tasks it trains teachers for" {
            let plan = PipelinePlan.Reduced

            let teacherTasks =
                plan.TeacherArgs
                |> Seq.pairwise
                |> Seq.filter (fun (a, _) -> a = "--task")
                |> Seq.map snd
                |> set

            for struct (a, b) in plan.Mixtures.Pairs do
                Expect.isTrue (teacherTasks.Contains a && teacherTasks.Contains b) $"{a}, {b} have teachers"
        }

        test "llgbm mixture scores a tiny pool's teachers, their merges and the mixture teacher on both components" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let baseDir, suite = TestPools.tinyBaseAndSuite root

                let teachers = TestPools.trainPool root baseDir suite 4 [| "add-1"; "upper" |]

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
                    ]

                Expect.equal code 0 err
                let mixTasks = Path.Combine(root, "mixtures", "tasks")
                let mixTeachers = Path.Combine(root, "mixtures", "teachers")

                let (code, _, err) =
                    llgbm [
                        "tasks"
                        "mix"
                        "--tasks"
                        suite
                        "--first"
                        "add-1"
                        "--second"
                        "upper"
                        "--out"
                        mixTasks
                    ]

                Expect.equal code 0 err

                let (code, _, err) =
                    llgbm [
                        "teachers"
                        "train"
                        "--base"
                        baseDir
                        "--tasks"
                        mixTasks
                        "--out"
                        mixTeachers
                        "--task"
                        "mix-add-1+upper"
                        "--steps"
                        "4"
                        "--checkpoints"
                        "2"
                        "--every"
                        "2"
                        "--eval-limit"
                        "2"
                    ]

                Expect.equal code 0 err
                let output = Path.Combine(root, "mixtures", "mix-add-1+upper.json")

                let (code, out, err) =
                    llgbm [
                        "mixture"
                        "--base"
                        baseDir
                        "--tasks"
                        suite
                        "--teachers"
                        teachers
                        "--deltas"
                        deltas
                        "--mixture-tasks"
                        mixTasks
                        "--mixture-teachers"
                        mixTeachers
                        "--mixture"
                        "mix-add-1+upper"
                        "--encodings"
                        Path.Combine(root, "encodings")
                        "--limit"
                        "3"
                        "--out"
                        output
                    ]

                Expect.equal code 0 err
                Expect.stringContains out "merge:ties" "the table"
                Expect.stringContains err "mixture teacher" "progress"
                use doc = JsonDocument.Parse(File.ReadAllText output)
                let json = doc.RootElement
                Expect.equal (json.GetProperty("first").GetString()) "add-1" "first component"

                let methods =
                    json.GetProperty("methods").EnumerateArray()
                    |> Seq.map (fun m -> m.GetProperty("method").GetString(), m)
                    |> dict

                Expect.sequenceEqual
                    methods.Keys
                    [
                        "base"
                        "teacher-first"
                        "teacher-second"
                        "mixture-teacher"
                        "merge:sum"
                        "merge:linear"
                        "merge:ties"
                    ]
                    "methods without generator runs"

                let delta (m: string) (field: string) =
                    methods[m].GetProperty("delta").GetProperty(field).GetDouble()

                // The teachers' deltas computed here from ΔW must be the cached deltas of their low-rank adapters.
                close (delta "teacher-first" "cos_first") 1.0 "δ(A's teacher) is δ_A"
                close (delta "teacher-second" "cos_second") 1.0 "δ(B's teacher) is δ_B"
                close (delta "mixture-teacher" "cos_mixture_teacher") 1.0 "the mixture teacher against itself"

                Expect.equal
                    (methods["base"].GetProperty("delta").ValueKind)
                    JsonValueKind.Null
                    "no delta without adapter"

                // The base model's score, checked against llgbm eval on the same examples.
                let run = methods["base"].GetProperty("runs")[0]
                let evalFile = Path.Combine(root, "eval.json")

                let (code, _, err) =
                    llgbm [
                        "eval"
                        "--model"
                        baseDir
                        "--tasks"
                        suite
                        "--task"
                        "add-1"
                        "--task"
                        "upper"
                        "--format"
                        "bare"
                        "--limit"
                        "3"
                        "--out"
                        evalFile
                    ]

                Expect.equal code 0 err
                use evalDoc = JsonDocument.Parse(File.ReadAllText evalFile)

                let correct task =
                    evalDoc.RootElement.EnumerateArray()
                    |> Seq.find (fun e -> e.GetProperty("task").GetString() = task)
                    |> fun e -> e.GetProperty("correct").GetInt32()

                Expect.equal (run.GetProperty("correct_first").GetInt32()) (correct "add-1") "add-1"
                Expect.equal (run.GetProperty("correct_second").GetInt32()) (correct "upper") "upper"
                Expect.equal (run.GetProperty("n_first").GetInt32()) 3 "limit"

                let (code, _, err) =
                    llgbm [
                        "mixture"
                        "--base"
                        baseDir
                        "--tasks"
                        suite
                        "--teachers"
                        teachers
                        "--deltas"
                        deltas
                        "--mixture-tasks"
                        mixTasks
                        "--mixture-teachers"
                        mixTeachers
                        "--mixture"
                        "mix-add-2+upper"
                    ]

                Expect.notEqual code 0 "no such mixture"
                Expect.stringContains err "llgbm tasks mix" "says how to make it")
        }
    ]
