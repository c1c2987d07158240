module LLGBM.Tests.ConditionEvaluatorTests

open Expecto
open LLGBM.Evaluation

/// A result of task `name` with the given accuracy over 100 examples.
let private result name accuracy =
    TaskEvaluationTests.make name "generated" "bare" (int (round (accuracy * 100.0))) 100 null

[<Tests>]
let tests =
    testList "ConditionEvaluator" [
        test "EvaluateOverConditions: one evaluation per distinct condition, in order; mean and sample std" {
            let seen = ResizeArray()
            let accuracyOf = dict [ "batch-a", 0.5; "batch-b", 0.7; "batch-c", 0.9 ]

            let summary =
                ConditionEvaluator.EvaluateOverConditions(
                    "t",
                    [| "batch-a"; "batch-b"; "batch-c" |],
                    fun condition ->
                        seen.Add condition
                        result "t" accuracyOf[condition]
                )

            Expect.equal (List.ofSeq seen) [ "batch-a"; "batch-b"; "batch-c" ] "each condition once"
            Expect.equal (List.ofSeq summary.Accuracies) [ 0.5; 0.7; 0.9 ] "per-condition accuracies"
            Expect.floatClose Accuracy.veryHigh summary.Mean 0.7 "mean"
            // deviations ±0.2 and 0: sqrt((0.04 + 0 + 0.04) / 2) = 0.2
            Expect.floatClose Accuracy.veryHigh summary.Std 0.2 "sample standard deviation"
            Expect.equal summary.Evaluations.Count 3 "evaluations kept"
            Expect.equal summary.Task "t" "task"
        }

        test "EvaluateOverConditions: refuses fewer conditions than asked for, and never fewer than two" {
            let never _ = failtest "no evaluation may run"

            let fails conditions minConditions =
                TestModels.errorMessage<LLGBM.LlgbmException>(fun () ->
                    ConditionEvaluator.EvaluateOverConditions("t", conditions, never, minConditions)
                    |> ignore)

            Expect.stringContains (fails [| 1 |] 3) "at least 3" "one condition"
            Expect.stringContains (fails [| 1; 2 |] 3) "at least 3" "two of three"
            Expect.stringContains (fails [| 1; 2; 3; 4 |] 5) "at least 5" "min 5"
            Expect.stringContains (fails [| 1 |] 1) "at least 2" "min 1 is not a mean over several"

            let two =
                ConditionEvaluator.EvaluateOverConditions("t", [| 1; 2 |], (fun c -> result "t" (float c / 4.0)), 2)

            Expect.floatClose Accuracy.veryHigh two.Mean 0.375 "two allowed when asked"
        }

        test "EvaluateOverConditions: a repeated condition or an evaluation of another task is an error" {
            Expect.throwsT<LLGBM.LlgbmException>
                (fun () ->
                    ConditionEvaluator.EvaluateOverConditions("t", [| 1; 2; 1 |], fun _ -> result "t" 0.5)
                    |> ignore)
                "repeated"

            Expect.throwsT<LLGBM.LlgbmException>
                (fun () ->
                    ConditionEvaluator.EvaluateOverConditions("t", [| 1; 2; 3 |], fun _ -> result "other" 0.5)
                    |> ignore)
                "other task"
        }
    ]
