module LLGBM.Tests.SentencePoolingTests

open Expecto
open TorchSharp
open LLGBM.Conditioning
open LLGBM.Tests.TestEncoders

[<Tests>]
let meanPool =
    testList "SentencePooling.MeanPool" [
        test "averages over real tokens only (hand computation)" {
            // Row 0: tokens (1, 2), (3, 4) real, (100, -100) padding -> (2, 3). Row 1: only (5, 7) real -> (5, 7).
            use hidden =
                torch
                    .tensor(
                        [|
                            1.0f
                            2.0f
                            3.0f
                            4.0f
                            100.0f
                            -100.0f
                            5.0f
                            7.0f
                            9.0f
                            9.0f
                            9.0f
                            9.0f
                        |]
                    )
                    .reshape(2L, 3L, 2L)

            use mask = torch.tensor([| 1L; 1L; 0L; 1L; 0L; 0L |]).reshape(2L, 3L)
            use pooled = SentencePooling.MeanPool(hidden, mask)
            Expect.equal (rows pooled) [| [| 2.0f; 3.0f |]; [| 5.0f; 7.0f |] |] "means over the masked positions"
        }
        test "a row without real tokens pools to zeros, not NaN" {
            use hidden = torch.ones (1L, 2L, 3L)
            use mask = torch.zeros ([| 1L; 2L |], dtype = torch.int64)
            use pooled = SentencePooling.MeanPool(hidden, mask)
            Expect.equal (rows pooled) [| [| 0.0f; 0.0f; 0.0f |] |] "zeros"
        }
    ]

[<Tests>]
let l2Normalize =
    testList "SentencePooling.L2Normalize" [
        test "divides each row by its norm (3-4-5 triangle)" {
            use x = torch.tensor([| 3.0f; 4.0f; 0.0f; -2.0f |]).reshape(2L, 2L)
            use y = SentencePooling.L2Normalize x
            let r = rows y
            Expect.floatClose Accuracy.high (float (r[0][0])) 0.6 "3/5"
            Expect.floatClose Accuracy.high (float (r[0][1])) 0.8 "4/5"
            Expect.floatClose Accuracy.high (float (r[1][0])) 0.0 "0"
            Expect.floatClose Accuracy.high (float (r[1][1])) -1.0 "-2/2"
        }
        test "a zero row stays zero" {
            use x = torch.zeros (1L, 4L)
            use y = SentencePooling.L2Normalize x
            Expect.equal (rows y) [| Array.zeroCreate 4 |] "no NaN"
        }
    ]
