module LLGBM.Tests.TrainingTests

open System
open Expecto
open TorchSharp
open LLGBM.Training
open LLGBM.Tests.TestModels

let private ints (xs: int list) =
    ResizeArray xs :> Collections.Generic.IReadOnlyList<int>

[<Tests>]
let tests =
    testList "Training" [
        test "LearningRateSchedule: linear warm-up, then cosine from the peak to the floor (hand-computed)" {
            let s =
                LearningRateSchedule(Peak = 1.0, WarmupSteps = 10, TotalSteps = 110, MinimumRatio = 0.1)

            Expect.floatClose Accuracy.high (s.At 0) 0.1 "first warm-up step: 1/10 of the peak"
            Expect.floatClose Accuracy.high (s.At 9) 1.0 "last warm-up step: the peak"
            Expect.floatClose Accuracy.high (s.At 10) 1.0 "decay starts at the peak"
            // halfway through the decay: 0.1 + 0.45 (1 + cos(pi/2)) = 0.55
            Expect.floatClose Accuracy.high (s.At 60) 0.55 "halfway"
            Expect.floatClose Accuracy.high (s.At 110) 0.1 "the floor"
            Expect.floatClose Accuracy.high (s.At 500) 0.1 "stays at the floor"
        }

        test "CompletionBatch: right padding, labels only on completion tokens, shifted by one" {
            use batch =
                CompletionBatch.Create(
                    [|
                        struct (ints [ 1; 2 ], ints [ 3; 9 ])
                        struct (ints [ 5 ], ints [ 6; 7; 9 ])
                    |],
                    0
                )

            Expect.sequenceEqual (batch.Ids.data<int64>().ToArray()) [| 1L; 2L; 3L; 9L; 5L; 6L; 7L; 9L |] "ids"
            Expect.sequenceEqual (batch.Mask.data<int64>().ToArray()) (Array.create 8 1L) "mask"

            Expect.sequenceEqual
                (batch.Labels.data<int64>().ToArray())
                [| -100L; 3L; 9L; -100L; 6L; 7L; 9L; -100L |]
                "labels"

            Expect.equal batch.CompletionTokens 5L "completion tokens"

            use shortBatch =
                CompletionBatch.Create([| struct (ints [ 1 ], ints [ 2 ]); struct (ints [ 1; 2; 3 ], ints [ 4 ]) |], 0)

            Expect.sequenceEqual
                (shortBatch.Mask.data<int64>().ToArray())
                [| 1L; 1L; 0L; 0L; 1L; 1L; 1L; 1L |]
                "padding masked"
        }

        test "CompletionBatch: uniform logits give ln V per token; the example losses average the completion tokens" {
            use batch =
                CompletionBatch.Create(
                    [|
                        struct (ints [ 1; 2 ], ints [ 3; 9 ])
                        struct (ints [ 5 ], ints [ 6; 7; 9 ])
                    |],
                    0
                )

            use uniform = torch.zeros (2L, 4L, 16L)
            Expect.floatClose Accuracy.medium (batch.Loss(uniform).item<float32>() |> float) (log 16.0) "ln 16"
            // make every label of row 1 certain: its example loss drops to ~0, row 0 keeps ln 16
            use sharp = torch.zeros (2L, 4L, 16L)

            for (t, token) in [ 0, 6L; 1, 7L; 2, 9L ] do
                sharp.index_put_ (
                    torch.tensor 100.0f,
                    [|
                        torch.TensorIndex.Single 1L
                        torch.TensorIndex.Single(int64 t)
                        torch.TensorIndex.Single token
                    |]
                )
                |> ignore

            let losses = batch.ExampleLosses(sharp).data<float32>().ToArray()
            Expect.floatClose Accuracy.medium (float losses[0]) (log 16.0) "row 0"
            Expect.isLessThan (float losses[1]) 1e-6 "row 1"
        }

        test "LossWeightedTaskSampler: unseen tasks weigh as the worst, weights follow the averaged losses with a floor" {
            let sampler = LossWeightedTaskSampler(3, floor = 0.05, decay = 0.9)
            Expect.sequenceEqual (sampler.Weights()) [| 1.0; 1.0; 1.0 |] "nothing seen: equal"
            sampler.Observe([| 0; 1 |], [| 2.0f; 0.001f |])
            Expect.sequenceEqual (sampler.Weights()) [| 2.0; 0.05; 2.0 |] "first losses; floor; unseen = worst"
            sampler.Observe([| 0 |], [| 1.0f |])
            Expect.floatClose Accuracy.high (sampler.Weights()[0]) 1.9 "0.9 * 2 + 0.1 * 1"
            let random = Random 5
            let counts = Array.zeroCreate 3

            for _ in 1..20000 do
                let i = sampler.Next random
                counts[i] <- counts[i] + 1

            // expected shares 1.9 : 0.05 : 2.0 of 3.95
            Expect.floatClose
                { absolute = 0.02; relative = 0.0 }
                (float counts[1] / 20000.0)
                (0.05 / 3.95)
                "floor share"

            Expect.floatClose { absolute = 0.02; relative = 0.0 } (float counts[2] / 20000.0) (2.0 / 3.95) "worst share"
        }
    ]
