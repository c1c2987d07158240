module LLGBM.Tests.MetricsTests

open Expecto
open FsCheck.FSharp
open LLGBM.Algebra
open LLGBM.Tests.NaiveAlgebra

/// The fraction of coordinates where some vector is positive and another negative, by a naive loop.
let private naiveConflicts (xs: float32[][]) =
    let n = xs[0].Length

    let conflicting =
        [ 0 .. n - 1 ]
        |> List.filter (fun i ->
            xs |> Array.exists (fun x -> x[i] > 0.0f)
            && xs |> Array.exists (fun x -> x[i] < 0.0f))

    float conflicting.Length / float n

[<Tests>]
let tests =
    testList "Metrics" [
        test "Metrics.cosine of orthogonal, parallel and opposite vectors" {
            Expect.floatClose Accuracy.high (Metrics.cosine [| 1f; 0f |] [| 0f; 3f |]) 0.0 "orthogonal"
            Expect.floatClose Accuracy.high (Metrics.cosine [| 1f; 2f |] [| 2f; 4f |]) 1.0 "parallel"
            Expect.floatClose Accuracy.high (Metrics.cosine [| 1f; 2f |] [| -1f; -2f |]) -1.0 "opposite"
        }
        test "Metrics.l2 of a 3-4-5 triangle" {
            Expect.floatClose Accuracy.high (Metrics.l2 [| 0f; 0f |] [| 3f; 4f |]) 5.0 "3-4-5"
        }
        test "Metrics.pairwise is the matrix of the metric between every pair" {
            let m = Metrics.pairwise Metrics.l2 [| [| 0f; 0f |]; [| 3f; 4f |]; [| 0f; 1f |] |]
            Expect.equal (Array2D.length1 m, Array2D.length2 m) (3, 3) "3 × 3"
            Expect.floatClose Accuracy.high m[0, 1] 5.0 "0–1"
            Expect.floatClose Accuracy.high m[1, 2] (sqrt 18.0) "1–2"
            Expect.floatClose Accuracy.high m[2, 2] 0.0 "diagonal"
        }
        test "Metrics.taskVectorCosine and taskVectorL2 over the union of modules" {
            use a = TaskVector.ofArrays [ "x", [| 1L |], [| 3.0f |] ]
            use b = TaskVector.ofArrays [ "y", [| 1L |], [| 4.0f |] ]
            use c = TaskVector.ofArrays [ "x", [| 1L |], [| 6.0f |]; "y", [| 1L |], [| 8.0f |] ]
            Expect.floatClose Accuracy.high (Metrics.taskVectorCosine a b) 0.0 "different modules: orthogonal"
            Expect.floatClose Accuracy.high (Metrics.taskVectorCosine a c) 0.6 "3·6 / (3 · 10)"
            Expect.floatClose Accuracy.high (Metrics.taskVectorL2 a b) 5.0 "‖(3, −4)‖"
        }
        test "Metrics.signConflictRate and signConflictCurve by hand" {
            let xs = [
                [| 1.0f; -1.0f; 0.0f; 2.0f |]
                [| -1.0f; -1.0f; 3.0f; 0.0f |]
                [| 0.0f; 1.0f; 0.0f; 0.0f |]
            ]

            let vs = xs |> List.map TaskVector.ofVector
            // Coordinate 0: + and −; 1: −, −, +; 2 and 3: one side only.
            Expect.floatClose Accuracy.high (Metrics.signConflictRate vs) 0.5 "2 of 4"
            Expect.equal (Metrics.signConflictCurve 1.0 vs) [ 1, 0.0; 2, 0.25; 3, 0.5 ] "grows with k"
            // Trimmed to one entry each (2, 3 and 1) nothing conflicts.
            Expect.equal (Metrics.signConflictCurve 0.25 vs) [ 1, 0.0; 2, 0.0; 3, 0.0 ] "trimmed"

            for v in vs do
                v.Dispose()
        }
        testPropertyWithConfig (Generators.config 60) "Metrics.signConflictRate counts what a naive loop counts"
        <| Prop.forAll (Arb.fromGen Generators.taskVectorArrays) (fun xs ->
            let vs = xs |> Array.map TaskVector.ofVector
            Expect.floatClose Accuracy.veryHigh (Metrics.signConflictRate vs) (naiveConflicts xs) "rate"

            for v in vs do
                v.Dispose())
    ]
