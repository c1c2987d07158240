module LLGBM.Tests.ExportTests

open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

/// ‖x − y‖ / ‖x‖ over plain arrays.
let private relative (x: float[]) (y: float[]) =
    sqrt (Array.fold2 (fun acc a b -> acc + (a - b) * (a - b)) 0.0 x y)
    / sqrt (Array.sumBy (fun a -> a * a) x)

[<Tests>]
let tests =
    testList "Export" [
        test "Export.lowRank of a matrix with singular values 3, 2, 1 at rank 2 leaves 1/√14" {
            // Q diag(3, 2, 1) with Q a permutation with signs: the singular values are 3, 2, 1.
            let w = [| 0.0f; 2.0f; 0.0f; 0.0f; 0.0f; -1.0f; 3.0f; 0.0f; 0.0f |]
            use tau = TaskVector.ofArrays [ "model.layers.0.self_attn.q_proj", [| 3L; 3L |], w ]
            let truncated = Export.lowRank 2 tau
            use _ = truncated.Adapter
            Expect.floatClose Accuracy.high truncated.RelativeError (1.0 / sqrt 14.0) "√(1² / (9 + 4 + 1))"
            let m = truncated.Adapter.Modules["model.layers.0.self_attn.q_proj"]
            Expect.equal m.Rank 2L "rank 2"
            use product = m.DeltaWeight()
            let ba = product.data<float32>().ToArray() |> wide
            // The best rank-2 approximation drops the singular value 1: the −1 entry.
            expectClose 1e-5 ba [| 0.0; 2.0; 0.0; 0.0; 0.0; 0.0; 3.0; 0.0; 0.0 |] "B·A"
            Expect.floatClose Accuracy.high (relative (wide w) ba) truncated.RelativeError "reported = measured"
        }

        test "Export.lowRank is exact for a rank-r ΔW, caps the rank at min(out, in), and reports each module" {
            use lora =
                randomLora Qwen2Presets.Micro 11L 3L 0.4 2.0 [ 0, "k_proj"; 1, "up_proj" ]

            use tau = TaskVector.ofLora lora
            let truncated = Export.lowRank 3 tau
            use _ = truncated.Adapter
            Expect.isLessThan truncated.RelativeError 1e-5 "rank 3 holds a rank-3 ΔW"
            let wide' = Export.lowRank 100 tau
            use _ = wide'.Adapter

            for m in wide'.Modules do
                let struct (o, i) = LoraSet.ShapeOf(Qwen2Presets.Micro, m.Path)
                Expect.equal m.Rank (int (min o i)) $"{m.Path}: min(out, in)"

            let low = Export.lowRank 1 tau
            use _ = low.Adapter
            Expect.isGreaterThan low.RelativeError 0.1 "rank 1 loses something"

            for m in low.Modules do
                use product = low.Adapter.Modules[m.Path].DeltaWeight()

                Expect.floatClose
                    Accuracy.medium
                    (relative
                        (tau[m.Path].data<float32>().ToArray() |> wide)
                        (product.data<float32>().ToArray() |> wide))
                    m.RelativeError
                    $"{m.Path}: reported = measured"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Export.lowRank 0 tau |> ignore))
                "at least 1"
                "rank 0"
        }

        test "Export.savePeft writes an adapter that PeftAdapter.Load reads back with the truncated ΔW" {
            withTempDir (fun root ->
                use lora =
                    randomLora Qwen2Presets.Micro 12L 2L 0.4 2.0 [ 0, "q_proj"; 1, "down_proj" ]

                use tau = TaskVector.ofLora lora
                let dir = Path.Combine(root, "adapter")
                let truncated = Export.savePeft dir 2 null tau
                use _ = truncated.Adapter
                let struct (config, loaded) = PeftAdapter.Load(dir, Qwen2Presets.Micro)
                use loaded = loaded
                Expect.equal config.Rank 2 "r"
                Expect.equal config.Alpha 2.0 "alpha = r"
                use back = TaskVector.ofLora loaded
                expectClose 1e-5 (entries back) (entries tau) "ΔW back")
        }
    ]
