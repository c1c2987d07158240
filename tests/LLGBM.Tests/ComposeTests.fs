module LLGBM.Tests.ComposeTests

open Expecto
open FsCheck.FSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestModels

/// Three float32 vectors of one length 1..12.
let private triple =
    gen {
        let! n = Gen.choose (1, 12)
        let! a = Generators.vector32 n
        let! b = Generators.vector32 n
        let! c = Generators.vector32 n
        return a, b, c
    }

[<Tests>]
let tests =
    testList "Compose" [
        test "delta arithmetic by hand" {
            Expect.sequenceEqual (Compose.add [| 1.0f; 2.0f |] [| 3.0f; -1.0f |]) [| 4.0f; 1.0f |] "add"
            Expect.sequenceEqual (Compose.sub [| 1.0f; 2.0f |] [| 3.0f; -1.0f |]) [| -2.0f; 3.0f |] "sub"
            Expect.sequenceEqual (Compose.scale 0.5 [| 1.0f; -4.0f |]) [| 0.5f; -2.0f |] "scale"

            Expect.sequenceEqual
                (Compose.interpolate 0.25 [| 0.0f; 4.0f |] [| 4.0f; 0.0f |])
                [| 1.0f; 3.0f |]
                "interpolate"

            Expect.sequenceEqual (Compose.mean [ [| 1.0f; 2.0f |]; [| 3.0f; 6.0f |] ]) [| 2.0f; 4.0f |] "mean"

            Expect.sequenceEqual
                (Compose.centre [ [| 1.0f; 2.0f |]; [| 3.0f; 6.0f |] ])
                [| [| -1.0f; -2.0f |]; [| 1.0f; 2.0f |] |]
                "centre"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Compose.add [| 1.0f |] [| 1.0f; 2.0f |] |> ignore))
                "length 1 and 2"
                "lengths"
        }

        test "task-vector arithmetic by hand: weighted sum, mean, centring, interpolation" {
            use a = vectorOf [| 1.0; 2.0 |]
            use b = vectorOf [| 3.0; -2.0 |]
            use s = Compose.TaskVectors.weightedSum [ 2.0; 0.5 ] [ a; b ]
            expectClose 1e-6 (entries s) [| 3.5; 3.0 |] "2a + b/2"
            use m = Compose.TaskVectors.mean [ a; b ]
            expectClose 1e-6 (entries m) [| 2.0; 0.0 |] "mean"
            let centred = Compose.TaskVectors.centre [ a; b ]
            expectClose 1e-6 (entries centred[0]) [| -1.0; 2.0 |] "a − mean"
            expectClose 1e-6 (entries centred[1]) [| 1.0; -2.0 |] "b − mean"
            use i = Compose.TaskVectors.interpolate 0.75 a b
            expectClose 1e-6 (entries i) [| 2.5; -1.0 |] "a/4 + 3b/4"
        }

        testPropertyWithConfig
            (Generators.config 60)
            "delta addition is commutative and associative; centred deltas sum to 0"
        <| Prop.forAll (Arb.fromGen triple) (fun (a, b, c) ->
            Expect.sequenceEqual (Compose.add a b) (Compose.add b a) "a + b = b + a"

            expectClose
                1e-6
                (Compose.add (Compose.add a b) c |> wide)
                (Compose.add a (Compose.add b c) |> wide)
                "(a + b) + c = a + (b + c)"

            expectClose
                1e-5
                (Compose.sum (Compose.centre [ a; b; c ]) |> wide)
                (Array.zeroCreate a.Length)
                "Σ centred = 0"

            expectClose 1e-6 (Compose.interpolate 0.0 a b |> wide) (wide a) "t = 0"
            expectClose 1e-6 (Compose.interpolate 1.0 a b |> wide) (wide b) "t = 1")

        testPropertyWithConfig (Generators.config 40) "task-vector addition is commutative and associative"
        <| Prop.forAll (Arb.fromGen triple) (fun (a, b, c) ->
            use ta = TaskVector.ofVector a
            use tb = TaskVector.ofVector b
            use tc = TaskVector.ofVector c
            use ab = ta + tb
            use ba = tb + ta
            Expect.sequenceEqual (TaskVector.toArray ab) (TaskVector.toArray ba) "a + b = b + a"
            use left = ab + tc
            use bc = tb + tc
            use right = ta + bc
            expectClose 1e-6 (entries left) (entries right) "(a + b) + c = a + (b + c)"
            let expected = Array.init a.Length (fun i -> float a[i] + float b[i] + float c[i])
            expectClose 1e-5 (entries left) expected "entry-wise sum")
    ]
