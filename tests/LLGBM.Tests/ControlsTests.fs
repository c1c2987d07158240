module LLGBM.Tests.ControlsTests

open Expecto
open FsCheck.FSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Checkpoints
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestModels

let private frobenius (values: float[]) =
    values |> Array.sumBy (fun x -> x * x) |> sqrt

[<Tests>]
let tests =
    testList "Controls" [
        testPropertyWithConfig (Generators.config 80) "Controls.shuffleTargets permutes the targets and moves every one"
        <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (0, 12)) (Gen.choose (-1000, 1000)))) (fun (n, seed) ->
            let pairs = Array.init n (fun i -> $"task-{i}", i * 10)
            let shuffled = Controls.shuffleTargets (int64 seed) pairs
            Expect.equal (shuffled |> Array.map fst) (pairs |> Array.map fst) "keys in order"
            Expect.equal (shuffled |> Array.map snd |> Array.sort) (pairs |> Array.map snd) "a permutation"

            if n >= 2 then
                for i in 0 .. n - 1 do
                    Expect.notEqual (snd shuffled[i]) (snd pairs[i]) $"key {i} gets another key's target"

            Expect.equal (Controls.shuffleTargets (int64 seed) pairs) shuffled "seeded")

        test "Controls.shuffleTargets differs between seeds and rejects repeated keys" {
            let pairs = Array.init 8 (fun i -> i, i)
            let outcomes = [ for seed in 0L .. 9L -> Controls.shuffleTargets seed pairs |> Array.map snd ]
            Expect.isGreaterThan (List.distinct outcomes).Length 5 "seeds give different shuffles"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Controls.shuffleTargets 0L [ "a", 1; "a", 2 ] |> ignore))
                "key a appears 2 times"
                "repeated key"
        }

        test "Seeds.permutation is a permutation of 0..n−1" {
            for n in [ 0; 1; 2; 7; 50 ] do
                Expect.equal (Seeds.permutation 3L n |> Array.sort) (Array.init n id) $"n = {n}"
        }

        test "Controls.randomAdapter keeps modules, ranks and scales and matches every module's ΔW norm" {
            use reference =
                randomLora Qwen2Presets.Micro 21L 3L 0.2 1.5 [ 0, "q_proj"; 1, "gate_proj"; 1, "down_proj" ]

            use random = Controls.randomAdapter 7L reference

            for KeyValue(path, m) in reference.Modules do
                let r = random.Modules[path]
                Expect.equal r.Rank m.Rank $"{path} rank"
                Expect.equal r.Scale m.Scale $"{path} scale"
                let struct (o, i) = LLGBM.Lora.LoraSet.ShapeOf(Qwen2Presets.Micro, path)

                let delta (x: LLGBM.Lora.LoraModule) =
                    let a = (nonNull x.A).data<float32>().ToArray() |> wide
                    let b = (nonNull x.B).data<float32>().ToArray() |> wide
                    matmul (int o) 3 (int i) b a |> Array.map (fun v -> v * x.Scale)

                let wanted, got = delta m, delta r
                Expect.floatClose Accuracy.medium (frobenius got) (frobenius wanted) $"{path} norm"

                let cos =
                    Array.fold2 (fun acc x y -> acc + x * y) 0.0 got wanted
                    / (frobenius got * frobenius wanted)

                Expect.isLessThan (abs cos) 0.5 $"{path}: another direction"

            use again = Controls.randomAdapter 7L reference
            use tauA = TaskVector.ofLora random
            use tauB = TaskVector.ofLora again
            Expect.sequenceEqual (TaskVector.toArray tauA) (TaskVector.toArray tauB) "seeded"
        }

        test "Controls.randomTaskVector matches every module's norm; the mean teacher is the average" {
            use a =
                TaskVector.ofArrays [
                    "x", [| 2L; 2L |], [| 1.0f; 2.0f; 3.0f; 4.0f |]
                    "y", [| 3L |], [| 0.0f; 0.0f; 5.0f |]
                ]

            use r = Controls.randomTaskVector 3L a
            Expect.floatClose Accuracy.medium (frobenius (r["x"].data<float32>().ToArray() |> wide)) (sqrt 30.0) "x"
            Expect.floatClose Accuracy.medium (frobenius (r["y"].data<float32>().ToArray() |> wide)) 5.0 "y"
            use b = TaskVector.ofArrays [ "x", [| 2L; 2L |], [| 3.0f; 2.0f; 1.0f; 0.0f |] ]
            use mean = Controls.meanTeacher [ a; b ]
            expectClose 1e-6 (entries mean) [| 2.0; 2.0; 2.0; 2.0; 0.0; 0.0; 2.5 |] "mean (y missing in b counts as 0)"
        }
    ]
