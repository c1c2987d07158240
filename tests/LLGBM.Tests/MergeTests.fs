module LLGBM.Tests.MergeTests

open Expecto
open FsCheck.FSharp
open TorchSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestModels

let private tv (values: float list) = vectorOf (Array.ofList values)

let private values (tau: TaskVector) =
    use tau = tau
    entries tau

let private exact (actual: float[]) (expected: float list) message =
    expectClose 1e-6 actual (Array.ofList expected) message

/// τ1, τ2, τ3 of the hand-computed example (TIES-Merging's recipe, arXiv 2306.01708; density 0.4 of 5 entries: keep 2
/// each).
let private handVectors () = [
    tv [ 1.0; -2.0; 0.5; 3.0; -0.1 ]
    tv [ -1.5; 1.0; 0.2; 2.0; 0.3 ]
    tv [ 0.5; -0.5; -2.5; -1.0; 0.4 ]
]

/// A LoRA set of rank-1 modules named by path, from (path, A row, B column, scale).
let private rank1 (modules: (string * float32[] * float32[] * float) list) =
    let table =
        readOnlyDict [
            for (path, a, b, scale) in modules ->
                path,
                LoraModule.LowRank(
                    torch.tensor(a).reshape(1L, int64 a.Length),
                    torch.tensor(b).reshape(int64 b.Length, 1L),
                    scale
                )
        ]

    new LoraSet(table, true)

let private valuesOf (t: torch.Tensor) = t.data<float32>().ToArray() |> wide

[<Tests>]
let tests =
    testList "Merge" [
        test "Merge.keptCount is ⌈d·n⌉ without rounding surprises, and rejects densities outside [0, 1]" {
            Expect.equal (Merge.keptCount 0.2 10L) 2L "0.2 · 10 = 2 (not 3 from 2.0000000000000004)"
            Expect.equal (Merge.keptCount 0.25 10L) 3L "⌈2.5⌉"
            Expect.equal (Merge.keptCount 0.0 7L) 0L "nothing"
            Expect.equal (Merge.keptCount 1.0 7L) 7L "everything"
            Expect.equal (Merge.keptCount 0.1 3L) 1L "⌈0.3⌉"

            for bad in [ -0.1; 1.5; nan ] do
                Expect.stringContains
                    (errorMessage<LlgbmException>(fun () -> Merge.keptCount bad 4L |> ignore))
                    "[0, 1]"
                    $"density {bad}"
        }

        test "TIES by hand: trim, elect, disjoint mean of three 5-entry vectors at density 0.4" {
            let vs = handVectors ()
            let trimmed = vs |> List.map (Merge.trim 0.4)
            exact (entries trimmed[0]) [ 0.0; -2.0; 0.0; 3.0; 0.0 ] "τ̂1 keeps 3 and −2"
            exact (entries trimmed[1]) [ -1.5; 0.0; 0.0; 2.0; 0.0 ] "τ̂2 keeps 2 and −1.5"
            exact (entries trimmed[2]) [ 0.0; 0.0; -2.5; -1.0; 0.0 ] "τ̂3 keeps −2.5 and −1"
            // Σ τ̂ = [−1.5, −2, −2.5, 4, 0]: signs [−, −, −, +, 0]; the zero takes the majority, sign(−1−1−1+1) = −1.
            use gamma = Merge.electSign trimmed
            exact (entries gamma) [ -1.0; -1.0; -1.0; 1.0; -1.0 ] "γ"
            use merged = Merge.disjointMean gamma trimmed
            exact (entries merged) [ -1.5; -2.0; -2.5; 2.5; 0.0 ] "mean of the agreeing entries: (3 + 2) / 2 at index 3"
            exact (values (Merge.ties 0.4 vs)) [ -1.5; -2.0; -2.5; 2.5; 0.0 ] "ties composes the steps"
        }

        test "Merge.electSign resolves a zero sum to the majority sign, +1 or −1" {
            exact (values (Merge.electSign [ tv [ 2.0; 1.0 ]; tv [ -2.0; 1.0 ] ])) [ 1.0; 1.0 ] "majority +1"

            exact
                (values (Merge.electSign [ tv [ 2.0; -1.0; -1.0 ]; tv [ -2.0; -1.0; -1.0 ] ]))
                [ -1.0; -1.0; -1.0 ]
                "majority −1"

            exact
                (values (Merge.ties 1.0 [ tv [ 2.0; -1.0; -1.0 ]; tv [ -2.0; -1.0; -1.0 ] ]))
                [ -2.0; -1.0; -1.0 ]
                "so TIES keeps −2"

            exact (values (Merge.electSign [ tv [ 0.0; 0.0 ] ])) [ 1.0; 1.0 ] "no mass at all: +1"
        }

        test "Merge.trim keeps exactly k entries, the earlier ones among equal magnitudes, over all modules at once" {
            exact (values (Merge.trim 0.5 (tv [ 1.0; -1.0; 1.0; 0.5 ]))) [ 1.0; -1.0; 0.0; 0.0 ] "ties at the threshold"

            use two =
                TaskVector.ofArrays [ "a", [| 2L |], [| 3.0f; 0.1f |]; "b", [| 2L |], [| 0.2f; -5.0f |] ]

            use kept = Merge.trim 0.5 two
            exact (entries kept) [ 3.0; 0.0; 0.0; -5.0 ] "the top 2 of the whole vector, one in each module"
            exact (valuesOf kept["b"]) [ 0.0; -5.0 ] "module b keeps its −5"
        }

        test "Merge.weightedAverage divides by the sum of the weights; bad weights are named" {
            exact
                (values (Merge.weightedAverage [ 3.0; 1.0 ] [ tv [ 4.0; 0.0 ]; tv [ 0.0; 8.0 ] ]))
                [ 3.0; 2.0 ]
                "(3·4, 8) / 4"

            exact (values (Merge.average [ tv [ 4.0; 0.0 ]; tv [ 0.0; 8.0 ] ])) [ 2.0; 4.0 ] "average"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () ->
                    Merge.weightedAverage [ 1.0 ] [ tv [ 1.0 ]; tv [ 2.0 ] ] |> ignore))
                "1 weights for 2 task vectors"
                "count"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () ->
                    Merge.weightedAverage [ 1.0; -1.0 ] [ tv [ 1.0 ]; tv [ 2.0 ] ] |> ignore))
                "sum to 0"
                "zero sum"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Merge.average [] |> ignore))
                "no task vectors"
                "empty"
        }

        test "Merge.tiesWeighted scales the vectors by weights of mean 1 before the vote" {
            // Weights [3, 1] → [1.5, 0.5]: [1.5·2, 0.5·(−4)] = [3, −2] → γ = +, merged 3; at index 1 both +: (1.5 + 0.5)/2.
            exact
                (values (Merge.tiesWeighted 1.0 [ 3.0; 1.0 ] [ tv [ 2.0; 1.0 ]; tv [ -4.0; 1.0 ] ]))
                [ 3.0; 1.0 ]
                "weighted vote"

            exact (values (Merge.ties 1.0 [ tv [ 2.0; 1.0 ]; tv [ -4.0; 1.0 ] ])) [ -4.0; 1.0 ] "unweighted, −4 wins"
        }

        test "Merge.dare: p = 0 is the identity, a seed gives one mask, survivors are rescaled by 1/(1 − p)" {
            let x = [ 1.0; -2.0; 3.0; 0.5; -0.25; 4.0; 2.0; -1.0 ]
            exact (values (Merge.dare 0.0 5L (tv x))) x "p = 0"
            let a = values (Merge.dare 0.5 5L (tv x))
            let b = values (Merge.dare 0.5 5L (tv x))
            Expect.sequenceEqual a b "same seed, same mask"

            for i in 0 .. x.Length - 1 do
                if a[i] <> 0.0 then
                    Expect.floatClose Accuracy.high a[i] (2.0 * x[i]) $"survivor {i} doubled"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Merge.dare 1.0 0L (tv x) |> ignore))
                "[0, 1)"
                "p = 1"
        }

        test "Merge.dare has the input as its expectation over seeds" {
            let x = [| 1.0; -2.0; 0.5; 4.0 |]
            let runs = 4000
            let sums = Array.zeroCreate<float> x.Length

            for seed in 1..runs do
                let d = values (Merge.dare 0.5 (int64 seed) (vectorOf x))

                for i in 0 .. x.Length - 1 do
                    sums[i] <- sums[i] + d[i]

            for i in 0 .. x.Length - 1 do
                // Each draw is 0 or 2x: standard deviation |x| per draw, |x|/√4000 ≈ 0.016|x| for the mean.
                Expect.isLessThan (abs (sums[i] / float runs - x[i])) (0.08 * abs x[i]) $"entry {i}: E[dare] = x"
        }

        test "Merge.merge dispatches on the method and applies λ; Method.Parse names the choices" {
            let vs () = [ tv [ 1.0; -2.0 ]; tv [ 3.0; 2.0 ] ]

            exact
                (values (
                    Merge.merge
                        {
                            Merge.Settings.Of Merge.Linear with
                                Lambda = 2.0
                        }
                        (vs ())
                ))
                [ 4.0; 0.0 ]
                "2 · mean"

            exact
                (values (
                    Merge.merge
                        {
                            Merge.Settings.Of Merge.Ties with
                                Density = 1.0
                        }
                        (vs ())
                ))
                [ 2.0; 2.0 ]
                "ties"

            exact
                (values (
                    Merge.merge
                        {
                            Merge.Settings.Of Merge.Dare with
                                Density = 1.0
                        }
                        (vs ())
                ))
                [ 2.0; 0.0 ]
                "DARE at density 1 keeps everything"

            Expect.equal (Merge.Method.Parse "dare-ties") Merge.DareTies "parse"
            Expect.equal Merge.DareTies.Name "dare-ties" "name"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Merge.Method.Parse "slerp" |> ignore))
                "linear, ties, dare or dare-ties"
                "unknown"
        }

        test "Merge.Peft.linear merges A and B separately, so B·A carries the cross terms" {
            // Adapters with scale 2 and weights 1: w' = √2 in both factors.
            use a =
                rank1 [ "model.layers.0.self_attn.q_proj", [| 1.0f; 2.0f |], [| 1.0f; 0.0f |], 2.0 ]

            use b =
                rank1 [ "model.layers.0.self_attn.q_proj", [| 0.0f; 1.0f |], [| 0.0f; 1.0f |], 2.0 ]

            use merged = Merge.Peft.linear [ 1.0; 1.0 ] [ a; b ]
            let m = merged.Modules["model.layers.0.self_attn.q_proj"]
            Expect.equal m.Scale 1.0 "scale 1 (alpha = r)"
            use product = m.DeltaWeight()
            // √2(B1 + B2) · √2(A1 + A2) = 2 [1, 1]ᵀ [1, 3].
            exact (valuesOf product) [ 2.0; 6.0; 2.0; 6.0 ] "B_new · A_new"
            // The ΔW sum is 2·[[1, 2], [0, 0]] + 2·[[0, 0], [0, 1]] = [[2, 4], [0, 2]]: not the same.
            Expect.notEqual (valuesOf product) [| 2.0; 4.0; 0.0; 2.0 |] "differs from the ΔW sum"
        }

        test "Merge.Peft.ties prunes ⌊d·numel⌋ entries per factor, elects on the pruned factors, averages agreeing ones" {
            use a =
                rank1 [
                    "model.layers.0.mlp.up_proj", [| 1.0f; -2.0f; 3.0f; 0.5f |], [| 1.0f; 2.0f |], 1.0
                ]

            use b =
                rank1 [
                    "model.layers.0.mlp.up_proj", [| -1.0f; 1.0f; 2.0f; -3.0f |], [| 2.0f; -1.0f |], 1.0
                ]

            use merged = Merge.Peft.ties 0.5 [] [ a; b ]
            let m = merged.Modules["model.layers.0.mlp.up_proj"]
            // A: pruned [0, −2, 3, 0] and [0, 0, 2, −3]; sums [0, −2, 5, −3] → signs [+, −, +, −].
            exact (valuesOf (nonNull m.A)) [ 0.0; -2.0; 2.5; -3.0 ] "A"
            // B: pruned [0, 2] and [2, 0] (one entry each); sums [2, 2] → +.
            exact (valuesOf (nonNull m.B)) [ 2.0; 2.0 ] "B"
        }

        test "Merge.Peft refuses adapters of different ranks in one module and dense modules" {
            use a = rank1 [ "model.layers.0.mlp.up_proj", [| 1.0f; 2.0f |], [| 1.0f |], 1.0 ]

            use b =
                new LoraSet(
                    readOnlyDict [
                        "model.layers.0.mlp.up_proj", LoraModule.LowRank(torch.ones (2L, 2L), torch.ones (1L, 2L), 1.0)
                    ],
                    true
                )

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Merge.Peft.linear [] [ a; b ] |> ignore))
                "ranks 1, 2"
                "ranks"

            use dense =
                new LoraSet(readOnlyDict [ "model.layers.0.mlp.up_proj", LoraModule.Dense(torch.ones (1L, 2L)) ], true)

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Merge.Peft.linear [] [ a; dense ] |> ignore))
                "dense"
                "dense"
        }

        test "merging, exporting and measuring leave no tensors behind" {
            use a = randomLora Qwen2Presets.Micro 1L 2L 0.3 2.0 [ 0, "q_proj"; 1, "up_proj" ]
            use b = randomLora Qwen2Presets.Micro 2L 2L 0.3 2.0 [ 0, "q_proj"; 1, "up_proj" ]
            use ta = TaskVector.ofLora a
            use tb = TaskVector.ofLora b

            let step () =
                for settings in
                    [ Merge.Linear; Merge.Ties; Merge.Dare; Merge.DareTies ]
                    |> List.map Merge.Settings.Of do
                    use m = Merge.merge { settings with Lambda = 0.5 } [ ta; tb ]
                    use p = Merge.Peft.merge settings [ a; b ]
                    ()

                use trimmed = Merge.trim 0.3 ta
                use gamma = Merge.electSign [ trimmed; tb ]
                use mean = Merge.disjointMean gamma [ trimmed; tb ]
                let low = Export.lowRank 2 mean
                low.Adapter.Dispose()
                Metrics.signConflictCurve 0.2 [ ta; tb ] |> ignore
                Metrics.taskVectorCosine ta tb |> ignore
                use random = Controls.randomAdapter 3L a
                use randomVector = Controls.randomTaskVector 3L ta
                use between = Compose.TaskVectors.interpolate 0.3 ta tb

                for v in Compose.TaskVectors.centre [ ta; tb ] do
                    v.Dispose()

                use dense = TaskVector.toDenseLora between
                ()

            step ()
            let before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount

            for _ in 1..3 do
                step ()

            Expect.equal TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount before "live tensors"
        }

        testPropertyWithConfig (Generators.config 60) "Merge.ties agrees with the naive TIES of the reference recipe"
        <| Prop.forAll (Arb.fromGen (Gen.zip Generators.taskVectorArrays Generators.density)) (fun (xs, d) ->
            let vs = xs |> Array.map TaskVector.ofVector
            let expected = ties d (xs |> Array.map wide)
            expectClose 1e-6 (values (Merge.ties d vs)) expected "TIES"

            for v in vs do
                v.Dispose())

        testPropertyWithConfig (Generators.config 60) "Merge.ties of one vector at density 1 is the identity"
        <| Prop.forAll (Arb.fromGen (Generators.vector32 7)) (fun x ->
            use v = TaskVector.ofVector x
            expectClose 0.0 (values (Merge.ties 1.0 [ v ])) (wide x) "identity")

        testPropertyWithConfig (Generators.config 60) "Merge.ties does not depend on the order of its inputs"
        <| Prop.forAll (Arb.fromGen (Gen.zip Generators.taskVectorArrays Generators.density)) (fun (xs, d) ->
            let vs = xs |> Array.map TaskVector.ofVector
            let forward = values (Merge.ties d vs)
            let backward = values (Merge.ties d (Array.rev vs))
            expectClose 1e-6 backward forward "reversed"

            for v in vs do
                v.Dispose())

        testPropertyWithConfig (Generators.config 60) "Merge.trim at density d keeps ⌈d·n⌉ entries, the largest ones"
        <| Prop.forAll
            (Arb.fromGen (
                gen {
                    let! n = Gen.choose (1, 16)
                    let! x = Generators.distinctMagnitudes n
                    let! d = Generators.density
                    return x, d
                }
            ))
            (fun (x, d) ->
                use v = TaskVector.ofVector x
                let kept = values (Merge.trim d v)
                let k = keep d x.Length
                let survivors = kept |> Array.filter (fun v -> v <> 0.0)
                Expect.equal survivors.Length k "count"

                let smallestKept =
                    if k = 0 then
                        infinity
                    else
                        survivors |> Array.map abs |> Array.min

                for i in 0 .. x.Length - 1 do
                    if kept[i] = 0.0 then
                        Expect.isLessThan (abs (float x[i])) smallestKept $"dropped entry {i} is smaller"
                    else
                        Expect.equal kept[i] (float x[i]) $"kept entry {i} unchanged")

        testPropertyWithConfig (Generators.config 60) "Merge.electSign of identical vectors is their sign"
        <| Prop.forAll (Arb.fromGen (Gen.zip (Generators.nonZeroVector32 9) (Gen.choose (1, 4)))) (fun (x, copies) ->
            let vs = Array.init copies (fun _ -> TaskVector.ofVector x)
            expectClose 0.0 (values (Merge.electSign vs)) (x |> Array.map (float >> sign)) "sign"

            for v in vs do
                v.Dispose())

        testPropertyWithConfig (Generators.config 60) "Merge.disjointMean of vectors that all agree is their mean"
        <| Prop.forAll (Arb.fromGen Generators.agreeingVectors) (fun xs ->
            let vs = xs |> Array.map TaskVector.ofVector
            use gamma = Merge.electSign vs
            let expected = weightedAverage (Array.create xs.Length 1.0) (xs |> Array.map wide)
            expectClose 1e-6 (values (Merge.disjointMean gamma vs)) expected "mean"

            for v in vs do
                v.Dispose())

        testPropertyWithConfig
            (Generators.config 40)
            "merging copies of one adapter returns it (linear, TIES at 1; trim(d) for TIES at d)"
        <| Prop.forAll
            (Arb.fromGen (Gen.zip3 (Generators.vector32 8) (Gen.choose (1, 4)) Generators.density))
            (fun (x, copies, d) ->
                let vs = Array.init copies (fun _ -> TaskVector.ofVector x)
                expectClose 1e-6 (values (Merge.average vs)) (wide x) "average"
                expectClose 1e-6 (values (Merge.ties 1.0 vs)) (wide x) "TIES at density 1"
                expectClose 1e-6 (values (Merge.ties d vs)) (trim d (wide x)) "TIES at d = trim d"

                for v in vs do
                    v.Dispose())
    ]
