module LLGBM.Tests.DeltaNeighboursTests

open System
open Expecto
open LLGBM
open LLGBM.Algebra
open LLGBM.Tests.TestModels

/// A point on the unit circle at `degrees`, as an embedded adapter of `task` in `domain`.
let private at (task: string) (domain: string) (degrees: float) : DeltaQuality.EmbeddedAdapter =
    let r = degrees * Math.PI / 180.0

    {
        Task = task
        Domain = domain
        Step = 0
        Final = true
        Vector = [| float32 (cos r); float32 (sin r) |]
    }

[<Tests>]
let tests =
    testList "DeltaNeighbours" [
        test "leave-one-task-out 1-NN: a task's own checkpoints are not neighbours; counted by hand on the circle" {
            // Angles (degrees): t1 (X) 0 and 5, t2 (X) 20, t3 (Y) 100, t4 (Y) 120, t5 (Y) 40, t6 (Y) -8. Nearest other
            // task by angle: t1@0 -> t6 (8°, Y: wrong), t1@5 -> t6 (13°, wrong), t2 -> t1@5 (15°, X: right),
            // t3 -> t4 (20°, right), t4 -> t3 (right), t5 -> t2 (20°, X: wrong), t6 -> t1@0 (8°, X: wrong): 3 of 7.
            // Were t1's own checkpoints allowed, t1@0 and t1@5 would find each other and count as right.
            let points = [|
                at "t1" "X" 0.0
                at "t1" "X" 5.0
                at "t2" "X" 20.0
                at "t3" "Y" 100.0
                at "t4" "Y" 120.0
                at "t5" "Y" 40.0
                at "t6" "Y" -8.0
            |]

            let check = DeltaNeighbours.leaveOneTaskOut points
            Expect.equal check.Points 7 "points"
            Expect.equal check.Correct 3 "correct"
            Expect.floatClose Accuracy.high check.Accuracy (3.0 / 7.0) "accuracy"
        }

        test "leave-one-task-out 1-NN needs two tasks" {
            let message =
                errorMessage<LlgbmException>(fun () ->
                    DeltaNeighbours.leaveOneTaskOut [| at "t1" "X" 0.0; at "t1" "X" 3.0 |] |> ignore)

            Expect.stringContains message "at least 2 tasks" "message"
        }

        test "teacher match and its summary, computed by hand" {
            let teachers = [|
                Tuple.Create("a", [| 1.0f; 0.0f |])
                Tuple.Create("b", [| 0.0f; 1.0f |])
                Tuple.Create("c", [| 1.0f; 1.0f |])
            |]
            // (1, 0.5) for task a: cos to a = 1/sqrt 1.25, to b = 0.5/sqrt 1.25, to c = 1.5/(sqrt 1.25 sqrt 2) > cos to a.
            let m1 = DeltaNeighbours.teacherMatch teachers "a" [| 1.0f; 0.5f |]
            let s = sqrt 1.25
            Expect.floatClose Accuracy.medium m1.Own (1.0 / s) "own"
            Expect.floatClose Accuracy.medium m1.Other ((0.5 / s + 1.5 / (s * sqrt 2.0)) / 2.0) "other"
            Expect.equal m1.Rank 2 "c is nearer than a"
            // (0, 1) for task b: cos to b = 1, to a = 0, to c = 1/sqrt 2.
            let m2 = DeltaNeighbours.teacherMatch teachers "b" [| 0.0f; 1.0f |]
            Expect.equal m2.Rank 1 "own teacher nearest"
            Expect.floatClose Accuracy.medium m2.Other ((0.0 + 1.0 / sqrt 2.0) / 2.0) "other"
            let summary = DeltaNeighbours.summarize [| m1; m2 |]
            Expect.equal summary.Points 2 "points"
            Expect.floatClose Accuracy.medium summary.Own ((1.0 / s + 1.0) / 2.0) "mean own"
            Expect.floatClose Accuracy.medium summary.Margin (summary.Own - summary.Other) "margin"
            Expect.floatClose Accuracy.high summary.Top1 0.5 "top-1"
            Expect.floatClose Accuracy.high summary.MeanRank 1.5 "mean rank"
        }

        test "teacher match refuses a task without a teacher" {
            let message =
                errorMessage<LlgbmException>(fun () ->
                    DeltaNeighbours.teacherMatch [| Tuple.Create("a", [| 1.0f |]); Tuple.Create("b", [| 2.0f |]) |] "z" [|
                        1.0f
                    |]
                    |> ignore)

            Expect.stringContains message "task z" "message"
        }
    ]
