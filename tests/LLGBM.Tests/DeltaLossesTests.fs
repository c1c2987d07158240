module LLGBM.Tests.DeltaLossesTests

open Expecto
open FsCheck.FSharp
open TorchSharp
open LLGBM.Delta
open LLGBM.Tests.TestModels

let private vec (values: float list) = torch.tensor (Array.ofList values)

let private value (t: torch.Tensor) =
    use t = t
    use wide = t.to_type torch.float64
    wide.item<float>()

let private mse p t = value (DeltaLosses.Mse(p, t))
let private nmse p t = value (DeltaLosses.NormalizedMse(p, t))

let private cosine p t =
    value (DeltaLosses.CosineDistance(p, t))

/// A [N, D] float64 tensor from row-major values.
let private matrix (rows: int) (dim: int) (values: float[]) =
    torch.tensor(values).view(int64 rows, int64 dim)

/// The three losses computed naively over plain arrays, row by row, then averaged over the rows.
let private naive (rows: int) (dim: int) (p: float[]) (t: float[]) =
    let row (xs: float[]) i = xs[i * dim .. i * dim + dim - 1]
    let norm (v: float[]) = sqrt (Array.sumBy (fun x -> x * x) v)

    let perRow = [
        for i in 0 .. rows - 1 ->
            let a, b = row p i, row t i
            let squared = Array.map2 (fun x y -> (x - y) * (x - y)) a b |> Array.average
            let an, bn = Array.map (fun x -> x / norm a) a, Array.map (fun x -> x / norm b) b
            let normalized = Array.map2 (fun x y -> (x - y) * (x - y)) an bn |> Array.average
            let cos = Array.map2 (*) an bn |> Array.sum
            squared, normalized, 1.0 - cos
    ]

    let mean f = perRow |> List.averageBy f
    mean (fun (a, _, _) -> a), mean (fun (_, b, _) -> b), mean (fun (_, _, c) -> c)

let private close (actual: float) (expected: float) message =
    Expect.floatClose { absolute = 1e-10; relative = 1e-10 } actual expected message

[<Tests>]
let tests =
    testList "DeltaLosses" [
        test "hand-derived values on 2-D vectors" {
            use p = vec [ 1.0; 0.0 ]
            use t = vec [ 0.0; 1.0 ]
            close (mse p t) 1.0 "Mse([1,0], [0,1]) = (1 + 1) / 2"
            close (nmse p t) 1.0 "NormalizedMse([1,0], [0,1]) = (2 - 2·0) / 2"
            close (cosine p t) 1.0 "CosineDistance([1,0], [0,1]) = 1 - 0"

            use a = vec [ 3.0; 4.0 ]
            use b = vec [ 6.0; 8.0 ]
            close (mse a b) 12.5 "(3² + 4²) / 2"
            close (nmse a b) 0.0 "same direction"
            close (cosine a b) 0.0 "same direction"

            // [1,1] against [1,0]: cos = 1/√2; unit vectors [1/√2, 1/√2], [1, 0] differ by (1/√2 - 1, 1/√2)
            use c = vec [ 1.0; 1.0 ]
            use d = vec [ 1.0; 0.0 ]
            close (mse c d) 0.5 "(0 + 1) / 2"
            close (nmse c d) (1.0 - 1.0 / sqrt 2.0) "((1/√2 - 1)² + 1/2) / 2 = 1 - 1/√2"
            close (cosine c d) (1.0 - 1.0 / sqrt 2.0) "1 - 1/√2"
            close (cosine c (-c)) 2.0 "opposite vectors"
        }

        test "[N, D]: the mean over rows of the per-row losses (naive loop)" {
            let p = [| 1.0; 2.0; -1.0; 0.5; 0.0; 3.0 |]
            let t = [| -2.0; 1.0; 1.0; 0.25; 4.0; -1.0 |]
            use pt = matrix 2 3 p
            use tt = matrix 2 3 t
            let (m, n, c) = naive 2 3 p t
            close (mse pt tt) m "Mse"
            close (nmse pt tt) n "NormalizedMse"
            close (cosine pt tt) c "CosineDistance"
            use scalar = DeltaLosses.Mse(pt, tt)
            Expect.equal (scalar.dim ()) 0L "a scalar tensor"
        }

        testPropertyWithConfig
            (Generators.config 60)
            "random batches agree with the naive loop; zero for identical inputs"
        <| Prop.forAll (Arb.fromGen Generators.vectorPairs) (fun (case, _) ->
            use p = matrix case.Rows case.Dim case.Predicted
            use t = matrix case.Rows case.Dim case.Target
            let (m, n, c) = naive case.Rows case.Dim case.Predicted case.Target
            close (mse p t) m "Mse"
            close (nmse p t) n "NormalizedMse"
            close (cosine p t) c "CosineDistance"
            Expect.equal (mse p p) 0.0 "Mse(x, x)"
            Expect.floatClose Accuracy.veryHigh (nmse p p) 0.0 "NormalizedMse(x, x)"
            Expect.floatClose Accuracy.veryHigh (cosine p p) 0.0 "CosineDistance(x, x)")

        testPropertyWithConfig
            (Generators.config 60)
            "symmetric; Mse scales by c², the normalised ones are scale-invariant"
        <| Prop.forAll (Arb.fromGen Generators.vectorPairs) (fun (case, c) ->
            use p = matrix case.Rows case.Dim case.Predicted
            use t = matrix case.Rows case.Dim case.Target
            use cp = p * c
            use ct = t * c
            close (mse t p) (mse p t) "Mse symmetric"
            close (nmse t p) (nmse p t) "NormalizedMse symmetric"
            close (cosine t p) (cosine p t) "CosineDistance symmetric"
            close (mse cp ct) (c * c * mse p t) "Mse(c p, c t) = c² Mse(p, t)"
            close (nmse cp t) (nmse p t) "NormalizedMse invariant to scaling predicted"
            close (nmse p ct) (nmse p t) "NormalizedMse invariant to scaling target"
            close (cosine cp t) (cosine p t) "CosineDistance invariant to scaling predicted"
            close (cosine p ct) (cosine p t) "CosineDistance invariant to scaling target"
            Expect.floatClose Accuracy.veryHigh (nmse p cp) 0.0 "NormalizedMse(x, c x) = 0"
            Expect.floatClose Accuracy.veryHigh (cosine p cp) 0.0 "CosineDistance(x, c x) = 0")

        test "a zero vector: finite values (1/D and 1) and finite gradients" {
            use zero = vec [ 0.0; 0.0; 0.0; 0.0 ]
            use t = vec [ 1.0; -2.0; 0.5; 3.0 ]
            close (nmse zero t) 0.25 "zero normalises to zero: ‖t̂‖² / D = 1/4"
            close (nmse zero zero) 0.0 "two zero vectors"
            close (cosine zero t) 1.0 "cos taken as 0"

            let losses: (torch.Tensor -> torch.Tensor) list = [
                (fun x -> DeltaLosses.NormalizedMse(x, t))
                (fun x -> DeltaLosses.CosineDistance(x, t))
            ]

            for loss in losses do
                use leaf = zero.clone().requires_grad_(true)
                use l = loss leaf
                l.backward ()
                Expect.isTrue (leaf.grad.isfinite().all().item<bool>()) "finite gradient at the zero vector"
        }

        test "gradients match central finite differences for one entry of either input" {
            use p = matrix 2 3 [| 1.0; 2.0; -1.0; 0.5; 0.0; 3.0 |]
            use t = matrix 2 3 [| -2.0; 1.0; 1.0; 0.25; 4.0; -1.0 |]

            let losses: (string * (torch.Tensor -> torch.Tensor -> torch.Tensor)) list = [
                "Mse", (fun a b -> DeltaLosses.Mse(a, b))
                "NormalizedMse", (fun a b -> DeltaLosses.NormalizedMse(a, b))
                "CosineDistance", (fun a b -> DeltaLosses.CosineDistance(a, b))
            ]

            for (name, loss) in losses do
                for index in [ 0L; 4L ] do
                    let (analytic, numeric) = gradientCheck (fun x -> loss x t) p index 1e-6

                    Expect.floatClose
                        { absolute = 1e-7; relative = 1e-6 }
                        analytic
                        numeric
                        $"{name} d/dpredicted[{index}]"

                    let (analytic, numeric) = gradientCheck (fun x -> loss p x) t index 1e-6
                    Expect.floatClose { absolute = 1e-7; relative = 1e-6 } analytic numeric $"{name} d/dtarget[{index}]"
        }

        test "inputs are left alive and unchanged; mismatched shapes are an error" {
            use p = vec [ 1.0; 2.0 ]
            use t = vec [ 3.0; -1.0 ]
            mse p t |> ignore
            nmse p t |> ignore
            cosine p t |> ignore
            Expect.sequenceEqual (p.data<float>().ToArray()) [| 1.0; 2.0 |] "predicted intact"
            Expect.sequenceEqual (t.data<float>().ToArray()) [| 3.0; -1.0 |] "target intact"
            use wrong = vec [ 1.0; 2.0; 3.0 ]
            let message = errorMessage<LLGBM.LlgbmException>(fun () -> mse p wrong |> ignore)
            Expect.stringContains message "same shape" "names the problem"
        }
    ]
