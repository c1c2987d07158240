module LLGBM.Tests.TaskEvaluationTests

open System.Text.Json
open Expecto
open LLGBM.Evaluation

/// A result of task `name` in `format` with `correct` of `n` examples right (F# cannot copy-and-update C# records).
let make name adapter format correct n predictions =
    TaskEvaluation(
        Task = name,
        Domain = "arithmetic",
        Model = "base-tiny",
        Adapter = adapter,
        Format = format,
        Metric = "exact_match",
        Accuracy = float correct / float n,
        Correct = correct,
        N = n,
        Predictions = predictions
    )

let sample = make "arith-add-3" null "bare" 3 4 null

[<Tests>]
let tests =
    testList "TaskEvaluation" [
        test "ToJson: snake_case fields, the adapter written as null, no predictions unless kept" {
            use doc = JsonDocument.Parse(sample.ToJson())
            let root = doc.RootElement

            let names = [ for p in root.EnumerateObject() -> p.Name ]

            Expect.equal
                names
                [
                    "task"
                    "domain"
                    "model"
                    "adapter"
                    "format"
                    "metric"
                    "accuracy"
                    "correct"
                    "n"
                ]
                "fields"

            Expect.equal (root.GetProperty("task").GetString()) "arith-add-3" "task"
            Expect.equal (root.GetProperty("adapter").ValueKind) JsonValueKind.Null "adapter"
            Expect.equal (root.GetProperty("accuracy").GetDouble()) 0.75 "accuracy"
            Expect.equal (root.GetProperty("n").GetInt32()) 4 "n"
        }

        test "ToJson/FromJson: round trip, with per-example predictions in snake_case" {
            let prediction =
                ExamplePrediction(
                    Index = 2,
                    Prediction = "B",
                    Reference = "A",
                    Correct = false,
                    ChoiceScores = [| -1.5; -0.25 |]
                )

            let withPredictions = make "arith-add-3" "gen-0" "bare" 3 4 [| prediction |]

            let json = withPredictions.ToJson()
            Expect.stringContains json "\"choice_scores\"" "snake_case inside predictions"
            let back = TaskEvaluation.FromJson json

            let fields (r: TaskEvaluation) =
                (r.Task, r.Domain, r.Model, r.Adapter, r.Format, r.Metric, r.Accuracy, r.Correct, r.N)

            Expect.equal (fields back) (fields withPredictions) "fields"
            Expect.equal back.Predictions.Count 1 "one prediction"
            let p = back.Predictions[0]

            Expect.equal
                (p.Index, p.Prediction, p.Reference, p.Correct, List.ofSeq p.ChoiceScores, p.Completion)
                (2, "B", "A", false, [ -1.5; -0.25 ], null)
                "prediction"
        }
    ]
