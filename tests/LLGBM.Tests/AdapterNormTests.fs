module LLGBM.Tests.AdapterNormTests

open System.Collections.Generic
open Expecto
open TorchSharp
open LLGBM.Lora
open LLGBM.Training
open LLGBM.Tests.TestModels

let private value (t: torch.Tensor) =
    use t = t
    use wide = t.to_type torch.float64
    wide.item<float>()

/// A set over the given modules, named after successive layers' q_proj (the set does not own them).
let private setOf (modules: LoraModule list) =
    let d = Dictionary<string, LoraModule>()

    modules |> List.iteri (fun i m -> d[LoraTarget.Path(i, "q_proj")] <- m)

    new LoraSet(d)

/// ‖ΔW‖_F² formed explicitly: scale · B · A (or the dense ΔW) per adapter, squared and summed; mean over the batch.
let private naive (modules: LoraModule list) =
    modules
    |> List.sumBy (fun m ->
        use delta =
            if isNull m.Delta then
                torch.matmul (m.B, m.A) * m.Scale
            else
                m.Delta.clone ()

        use perAdapter = delta.to_type(torch.float64).square().sum([| -2L; -1L |])
        perAdapter.mean().item<float>())

let private close (actual: float) (expected: float) message =
    Expect.floatClose { absolute = 1e-9; relative = 1e-9 } actual expected message

[<Tests>]
let tests =
    testList "AdapterNorm" [
        test "Penalty equals ‖scale · B · A‖_F² formed explicitly, for ranks 1 to 8 and a dense module" {
            let g = new torch.Generator(9UL)

            let lowRank (rank: int64) (o: int64) (i: int64) (scale: float) =
                LoraModule.LowRank(
                    torch.randn ([| rank; i |], generator = g, dtype = torch.float64),
                    torch.randn ([| o; rank |], generator = g, dtype = torch.float64),
                    scale
                )

            for rank in [ 1L; 2L; 3L; 8L ] do
                let modules = [ lowRank rank 5L 7L 2.0; lowRank rank 12L 4L 0.5 ]
                use set = setOf modules
                close (value (AdapterNorm.Penalty set)) (naive modules) $"rank {rank}"

            let dense =
                LoraModule.Dense(torch.randn ([| 3L; 6L |], generator = g, dtype = torch.float64))

            let modules = [ dense; lowRank 4L 3L 6L 1.5 ]
            use set = setOf modules
            close (value (AdapterNorm.Penalty set)) (naive modules) "dense plus low-rank"
        }

        test "Penalty of a batched set: the mean over the N adapters of each one's norm" {
            let g = new torch.Generator(10UL)

            let batched (rank: int64) (scale: float) =
                LoraModule.LowRank(
                    torch.randn ([| 3L; rank; 6L |], generator = g, dtype = torch.float64),
                    torch.randn ([| 3L; 5L; rank |], generator = g, dtype = torch.float64),
                    scale
                )

            let modules = [
                batched 2L 2.0
                batched 4L 0.25
                LoraModule.Dense(torch.randn ([| 3L; 5L; 6L |], generator = g, dtype = torch.float64))
            ]

            use set = setOf modules
            close (value (AdapterNorm.Penalty set)) (naive modules) "batched low-rank and dense"

            // one adapter alone is the unbatched penalty of its slice
            let first =
                modules
                |> List.map (fun m ->
                    if isNull m.Delta then
                        LoraModule.LowRank(m.A[0], m.B[0], m.Scale)
                    else
                        LoraModule.Dense(m.Delta[0]))

            use single = setOf first
            close (value (AdapterNorm.Penalty single)) (naive first) "slice 0"
        }

        test "Penalty: exactly 0 for B = 0 and for an empty set; the set's tensors stay alive" {
            use model = micro 1L

            use lora =
                LoraSet.Initialize(LoraConfig(Rank = 4, Alpha = 8.0), LLGBM.Checkpoints.Qwen2Presets.Micro, 7L)

            Expect.equal (value (AdapterNorm.Penalty lora)) 0.0 "PEFT init: B = 0"
            use empty = setOf []
            Expect.equal (value (AdapterNorm.Penalty empty)) 0.0 "no modules"

            use random =
                randomLora LLGBM.Checkpoints.Qwen2Presets.Micro 3L 2L 0.3 2.0 [ (0, "k_proj"); (1, "up_proj") ]

            let expected = naive (List.ofSeq random.Modules.Values)

            Expect.floatClose
                { absolute = 1e-6; relative = 1e-5 }
                (value (AdapterNorm.Penalty random))
                expected
                "float32 factors"

            Expect.floatClose
                { absolute = 1e-6; relative = 1e-5 }
                (value (AdapterNorm.Penalty random))
                expected
                "again: nothing was disposed"
        }

        test "Penalty: the gradient matches central finite differences for one entry of A and of B" {
            let g = new torch.Generator(12UL)
            use a = torch.randn ([| 3L; 4L |], generator = g, dtype = torch.float64)
            use b = torch.randn ([| 5L; 3L |], generator = g, dtype = torch.float64)

            let penalty (a: torch.Tensor) (b: torch.Tensor) =
                use set = setOf [ LoraModule.LowRank(a, b, 1.5) ]
                AdapterNorm.Penalty set

            for index in [ 0L; 7L ] do
                let (analytic, numeric) = gradientCheck (fun x -> penalty x b) a index 1e-6
                Expect.floatClose { absolute = 1e-7; relative = 1e-6 } analytic numeric $"d/dA[{index}]"
                let (analytic, numeric) = gradientCheck (fun x -> penalty a x) b index 1e-6
                Expect.floatClose { absolute = 1e-7; relative = 1e-6 } analytic numeric $"d/dB[{index}]"
        }
    ]
