module LLGBM.Tests.TaskVectorTests

open Expecto
open TorchSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestModels

[<Tests>]
let tests =
    testList "TaskVector" [
        test "TaskVector.ofLora is scale · B · A per module, computed here by a naive loop" {
            use lora =
                randomLora Qwen2Presets.Micro 3L 2L 0.5 1.5 [ 0, "q_proj"; 1, "down_proj" ]

            use tau = TaskVector.ofLora lora

            Expect.sequenceEqual
                tau.Paths
                [| "model.layers.0.self_attn.q_proj"; "model.layers.1.mlp.down_proj" |]
                "paths"

            for path in tau.Paths do
                let m = lora.Modules[path]
                let a = (nonNull m.A).data<float32>().ToArray() |> wide
                let b = (nonNull m.B).data<float32>().ToArray() |> wide
                let struct (o, i) = LoraSet.ShapeOf(Qwen2Presets.Micro, path)
                let expected = matmul (int o) 2 (int i) b a |> Array.map (fun x -> 1.5 * x)
                Expect.sequenceEqual tau[path].shape [| o; i |] $"{path} shape"
                expectClose 1e-5 (tau[path].data<float32>().ToArray() |> wide) expected path
        }

        test "flatten concatenates modules in ordinal path order; unflattenLike inverts it" {
            use tau =
                TaskVector.ofArrays [ "b", [| 2L |], [| 3.0f; 4.0f |]; "a", [| 1L; 2L |], [| 1.0f; 2.0f |] ]

            Expect.sequenceEqual (TaskVector.toArray tau) [| 1.0f; 2.0f; 3.0f; 4.0f |] "a before b"
            use flat = torch.tensor [| 5.0f; 6.0f; 7.0f; 8.0f |]
            use back = TaskVector.unflattenLike tau flat
            Expect.sequenceEqual back["a"].shape [| 1L; 2L |] "shape kept"
            Expect.sequenceEqual (back["b"].data<float32>().ToArray()) [| 7.0f; 8.0f |] "values"
            Expect.floatClose Accuracy.high (TaskVector.norm tau) (sqrt 30.0) "‖(1, 2, 3, 4)‖"
        }

        test "operators work over the union of modules, a missing module counting as zero" {
            use a = TaskVector.ofArrays [ "x", [| 2L |], [| 1.0f; 2.0f |] ]

            use b =
                TaskVector.ofArrays [ "y", [| 1L |], [| 5.0f |]; "x", [| 2L |], [| 10.0f; 20.0f |] ]

            use sum = a + b
            Expect.sequenceEqual (TaskVector.toArray sum) [| 11.0f; 22.0f; 5.0f |] "a + b"
            use diff = a - b
            Expect.sequenceEqual (TaskVector.toArray diff) [| -9.0f; -18.0f; -5.0f |] "a − b"
            use scaled = 2.0 * a
            Expect.sequenceEqual (TaskVector.toArray scaled) [| 2.0f; 4.0f |] "2a"
            use negated = -a
            Expect.sequenceEqual (TaskVector.toArray negated) [| -1.0f; -2.0f |] "−a"
        }

        test "mismatched shapes and duplicate modules are errors naming the module" {
            use a = TaskVector.ofArrays [ "x", [| 2L |], [| 1.0f; 2.0f |] ]
            use b = TaskVector.ofArrays [ "x", [| 3L |], [| 1.0f; 2.0f; 3.0f |] ]

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> (a + b).Dispose()))
                "module x is [2] in one and [3]"
                "shape"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> TaskVector.align [ a; b ] |> ignore))
                "module x"
                "align"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> TaskVector.ofArrays [ "x", [| 3L |], [| 1.0f |] ] |> ignore))
                "x has shape [3] (3 entries) but 1 values"
                "values"
        }

        test "toDenseLora applies ΔW as the low-rank adapter does" {
            use model = micro 4L
            use lora = randomLora model.Config 5L 2L 0.3 2.0 [ 0, "v_proj"; 1, "gate_proj" ]
            use tau = TaskVector.ofLora lora
            use dense = TaskVector.toDenseLora tau
            use ids = randomIds 6L model.Config.VocabSize 2 5
            use _ = torch.no_grad ()

            use viaFactors = model.Forward(ids, LLGBM.Model.ForwardOptions(Lora = lora))
            use viaDense = model.Forward(ids, LLGBM.Model.ForwardOptions(Lora = dense))
            use plain = model.Forward(ids, LLGBM.Model.ForwardOptions())
            Expect.isLessThan (maxAbsDiff viaFactors.Logits viaDense.Logits) 1e-4 "same logits"
            Expect.isGreaterThan (maxAbsDiff viaFactors.Logits plain.Logits) 1e-3 "and not the base's"
        }
    ]
