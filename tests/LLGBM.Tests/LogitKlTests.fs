module LLGBM.Tests.LogitKlTests

open Expecto
open TorchSharp
open LLGBM.Checkpoints
open LLGBM.Training
open LLGBM.Tests.TestModels

let private value (t: torch.Tensor) =
    use t = t
    use wide = t.to_type torch.float64
    wide.item<float>()

/// KL(teacher ‖ student) of one position's logits at temperature τ, naively over plain arrays, times τ².
let private naiveKl (student: float[]) (teacher: float[]) (tau: float) =
    let softmax (xs: float[]) =
        let e = xs |> Array.map (fun x -> exp (x / tau))
        let z = Array.sum e
        e |> Array.map (fun x -> x / z)

    let ps, pt = softmax student, softmax teacher
    tau * tau * (Array.map2 (fun t s -> t * log (t / s)) pt ps |> Array.sum)

/// Logits [B, T, V] (float64) from row-major values.
let private logits (b: int64) (t: int64) (v: int64) (values: float[]) = torch.tensor(values).view(b, t, v)

let private close (actual: float) (expected: float) message =
    Expect.floatClose { absolute = 1e-12; relative = 1e-10 } actual expected message

[<Tests>]
let tests =
    testList "LogitKl" [
        test "Divergence: two 2-way distributions by hand, and it is not symmetric" {
            // teacher softmax([0, ln 3]) = [1/4, 3/4], student softmax([0, 0]) = [1/2, 1/2]
            use student = torch.tensor [| 0.0; 0.0 |]
            use teacher = torch.tensor [| 0.0; log 3.0 |]
            let expected = 0.25 * log (0.25 / 0.5) + 0.75 * log (0.75 / 0.5)
            close (value (LogitKl.Divergence(student, teacher))) expected "1/4 ln(1/2) + 3/4 ln(3/2) ≈ 0.1308"
            let reversed = 0.5 * log (0.5 / 0.25) + 0.5 * log (0.5 / 0.75)
            close (value (LogitKl.Divergence(teacher, student))) reversed "1/2 ln 2 + 1/2 ln(2/3) ≈ 0.1438"
            Expect.isGreaterThan (abs (expected - reversed)) 0.01 "KL(t ‖ s) ≠ KL(s ‖ t)"
        }

        test "Divergence: temperature divides both logits and multiplies the result by τ²" {
            use student = torch.tensor [| 0.0; 0.0 |]
            use teacher = torch.tensor [| 0.0; log 3.0 |]
            // at τ = 2: teacher softmax([0, ln 3 / 2]) = [1, √3] / (1 + √3); student stays uniform
            let p1, p2 = 1.0 / (1.0 + sqrt 3.0), sqrt 3.0 / (1.0 + sqrt 3.0)
            let expected = 4.0 * (p1 * log (2.0 * p1) + p2 * log (2.0 * p2))
            close (value (LogitKl.Divergence(student, teacher, temperature = 2.0))) expected "τ² Σ p ln(2p)"
        }

        test "Divergence: the mean over masked positions only (naive loop)" {
            let s = [|
                1.0
                -0.5
                2.0
                0.0
                0.0
                0.0
                3.0
                1.0
                -1.0
                0.5
                0.25
                2.0
                -2.0
                1.0
                0.0
                0.0
                4.0
                1.0
            |]

            let t = [|
                0.0
                1.0
                1.0
                2.0
                -1.0
                0.5
                0.0
                0.0
                0.0
                1.5
                0.5
                -1.0
                1.0
                1.0
                1.0
                3.0
                0.0
                2.0
            |]

            use ls = logits 2L 3L 3L s
            use lt = logits 2L 3L 3L t

            let position i =
                naiveKl s[3 * i .. 3 * i + 2] t[3 * i .. 3 * i + 2] 1.0

            use mask = longs [ 2L; 3L ] [ 1L; 1L; 0L; 1L; 0L; 0L ]
            let expected = (position 0 + position 1 + position 3) / 3.0
            close (value (LogitKl.Divergence(ls, lt, mask))) expected "positions (0,0), (0,1), (1,0)"
            let all = List.averageBy position [ 0..5 ]
            close (value (LogitKl.Divergence(ls, lt))) all "no mask: every position"
            use none = longs [ 2L; 3L ] [ 0L; 0L; 0L; 0L; 0L; 0L ]
            Expect.equal (value (LogitKl.Divergence(ls, lt, none))) 0.0 "no position selected: 0"
            Expect.sequenceEqual (ls.data<float>().ToArray()) s "inputs left intact"
        }

        test "Divergence: 0 for identical logits, invariant to a constant added to a position's logits" {
            let g = new torch.Generator(11UL)
            use student = torch.randn ([| 2L; 4L; 7L |], generator = g, dtype = torch.float32)
            use teacher = torch.randn ([| 2L; 4L; 7L |], generator = g, dtype = torch.float32)
            Expect.equal (value (LogitKl.Divergence(student, student))) 0.0 "KL(x ‖ x) = 0"

            Expect.equal
                (value (LogitKl.Divergence(student.to_type torch.bfloat16, student.to_type torch.bfloat16)))
                0.0
                "also from bf16"

            use shiftS = torch.randn ([| 2L; 4L; 1L |], generator = g) * 10.0
            use shiftT = torch.randn ([| 2L; 4L; 1L |], generator = g) * 10.0
            use movedS = student + shiftS
            use movedT = teacher + shiftT
            let before = value (LogitKl.Divergence(student, teacher))
            Expect.isGreaterThan before 0.0 "different logits"

            Expect.floatClose
                { absolute = 1e-5; relative = 1e-5 }
                (value (LogitKl.Divergence(movedS, movedT)))
                before
                "shifted per position"

            Expect.floatClose
                { absolute = 1e-6; relative = 0.0 }
                (value (LogitKl.Divergence(movedS, student)))
                0.0
                "a shift alone gives 0"
        }

        test "Divergence: gradients match central finite differences for one logit of either side" {
            let g = new torch.Generator(5UL)
            use student = torch.randn ([| 1L; 2L; 4L |], generator = g, dtype = torch.float64)
            use teacher = torch.randn ([| 1L; 2L; 4L |], generator = g, dtype = torch.float64)
            use mask = longs [ 1L; 2L ] [ 1L; 1L ]

            for index in [ 1L; 6L ] do
                let (analytic, numeric) =
                    gradientCheck (fun x -> LogitKl.Divergence(x, teacher, mask, 1.5)) student index 1e-6

                Expect.floatClose { absolute = 1e-8; relative = 1e-6 } analytic numeric $"d/dstudent[{index}]"

                let (analytic, numeric) =
                    gradientCheck (fun x -> LogitKl.Divergence(student, x, mask, 1.5)) teacher index 1e-6

                Expect.floatClose { absolute = 1e-8; relative = 1e-6 } analytic numeric $"d/dteacher[{index}]"
        }

        test "Between: 0 for the same adapter, positive for different ones; gradients reach only the student" {
            use model = micro 3L
            let config = Qwen2Presets.Micro
            let targets = [ (0, "q_proj"); (1, "v_proj"); (1, "down_proj") ]
            use student = randomLora config 21L 2L 0.3 1.0 targets
            use teacher = randomLora config 22L 2L 0.3 1.0 targets
            use ids = randomIds 4L config.VocabSize 2 5
            use mask = longs [ 2L; 5L ] [ 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 0L; 0L ]

            Expect.floatClose
                { absolute = 1e-7; relative = 0.0 }
                (value (LogitKl.Between(model, ids, mask, student, student)))
                0.0
                "same adapter"

            Expect.floatClose
                { absolute = 1e-7; relative = 0.0 }
                (value (LogitKl.Between(model, ids, mask, null, null)))
                0.0
                "both bare"

            for m in student.Modules.Values do
                m.B.requires_grad_ (true) |> ignore

            for m in teacher.Modules.Values do
                m.B.requires_grad_ (true) |> ignore

            use kl = LogitKl.Between(model, ids, mask, student, teacher)
            Expect.isGreaterThan (kl.item<float32>()) 1e-4f "different adapters"

            Expect.isGreaterThan
                (value (LogitKl.Between(model, ids, mask, null, teacher)))
                1e-4
                "bare base against the teacher"

            kl.backward ()
            let q = student.Modules["model.layers.0.self_attn.q_proj"]
            Expect.isNotNull q.B.grad "student gets a gradient"
            Expect.isGreaterThan (q.B.grad.abs().sum().item<float32>()) 0f "a non-zero one"
            Expect.isNull teacher.Modules["model.layers.0.self_attn.q_proj"].B.grad "the teacher runs under no_grad"
        }
    ]
