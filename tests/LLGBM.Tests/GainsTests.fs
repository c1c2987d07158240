module LLGBM.Tests.GainsTests

open Expecto
open LLGBM
open LLGBM.Algebra
open LLGBM.Tests.TestModels

[<Tests>]
let tests =
    testList "Gains" [
        test "Gains.normalised is 0 at the base model, 1 at the oracle, and undefined without a gap" {
            let close expected actual message =
                Expect.floatClose Accuracy.veryHigh (Option.get actual) expected message

            close 0.5 (Gains.normalised 0.1 0.9 0.5) "halfway"
            close 0.0 (Gains.normalised 0.1 0.9 0.1) "the base model"
            close 1.0 (Gains.normalised 0.1 0.9 0.9) "the oracle"
            close -0.125 (Gains.normalised 0.1 0.9 0.0) "below the base: (0 − 0.1) / 0.8"
            Expect.isNone (Gains.normalised 0.5 0.5 0.7) "no gap"
            Expect.isNone (Gains.normalised 0.6 0.5 0.7) "the oracle below the base"
        }

        test "Gains.quantile interpolates between order statistics as NumPy's default does" {
            Expect.equal (Gains.quantile 0.5 [| 4.0; 1.0; 3.0; 2.0 |]) 2.5 "median of 1..4"
            Expect.equal (Gains.quantile 0.25 [| 1.0; 2.0; 3.0; 4.0 |]) 1.75 "h = 0.75"
            Expect.equal (Gains.quantile 0.0 [| 3.0; 1.0 |]) 1.0 "minimum"
            Expect.equal (Gains.quantile 1.0 [| 3.0; 1.0 |]) 3.0 "maximum"
            Expect.equal (Gains.quantile 0.3 [| 7.0 |]) 7.0 "one value"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Gains.quantile 0.5 [||] |> ignore))
                "no values"
                "empty"
        }

        test "Seeds.uniform draws every index in range about equally often, the same for the same seed" {
            let draws = Seeds.uniform 3L 4 10000
            Expect.equal draws (Seeds.uniform 3L 4 10000) "deterministic"
            Expect.notEqual draws (Seeds.uniform 4L 4 10000) "another seed"

            for i in 0..3 do
                let count = draws |> Array.filter ((=) i) |> Array.length
                // 2500 ± 43 expected (binomial); ±200 is more than 4.5 standard deviations.
                Expect.isTrue (count > 2300 && count < 2700) $"index {i} drawn {count} times"
        }

        test
            "Gains.bootstrapMean: exact for constants, the outer resamples for two values, the normal interval for many" {
            let constant = Gains.bootstrapMean 1L 500 0.95 [| 0.3; 0.3; 0.3 |]
            Expect.floatClose Accuracy.veryHigh constant.Low 0.3 "constant: low"
            Expect.floatClose Accuracy.veryHigh constant.High 0.3 "constant: high"
            Expect.equal constant.Count 3 "count"

            // Resample means of {0, 1} are 0, 0.5 and 1 with probabilities 1/4, 1/2, 1/4.
            let two = Gains.bootstrapMean 2L 2000 0.95 [| 0.0; 1.0 |]
            Expect.equal (two.Mean, two.Low, two.High) (0.5, 0.0, 1.0) "two values"

            // 0..9: mean 4.5, standard error of the mean (population sd / √n) 0.908, so the 95 % interval is close to
            // 4.5 ± 1.96 · 0.908 = [2.72, 6.28].
            let many = Gains.bootstrapMean 3L 4000 0.95 [| for i in 0..9 -> float i |]
            Expect.isTrue (many.Low > 2.4 && many.Low < 3.0) $"low {many.Low}"
            Expect.isTrue (many.High > 6.0 && many.High < 6.6) $"high {many.High}"

            Expect.equal
                (Gains.bootstrapMean 3L 4000 0.95 [| for i in 0..9 -> float i |])
                many
                "the same seed, the same interval"

            for bad, expected in [ [| nan |], "finite"; [||], "no values" ] do
                Expect.stringContains
                    (errorMessage<LlgbmException>(fun () -> Gains.bootstrapMean 1L 10 0.95 bad |> ignore))
                    expected
                    expected
        }
    ]
