module LLGBM.Tests.MetricsTests

open Expecto
open LLGBM.Algebra

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
    ]
