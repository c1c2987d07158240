module LLGBM.Tests.LoraTests

open System.Collections.Generic
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestModels

let private micro' = Qwen2Presets.Micro

/// A random adapter on every module of the micro model: A, B ~ N(0, 0.3), scale 2.
let private randomAdapter (seed: int64) (targets: string list) =
    let g = new torch.Generator(uint64 seed)

    let modules =
        [
            for layer in 0 .. micro'.NumHiddenLayers - 1 do
                for m in targets do
                    let path = LoraTarget.Path(layer, m)
                    let struct (o, i) = LoraSet.ShapeOf(micro', path)

                    path,
                    LoraModule.LowRank(
                        torch.randn ([| 4L; i |], generator = g) * 0.3,
                        torch.randn ([| o; 4L |], generator = g) * 0.3,
                        2.0
                    )
        ]
        |> dict

    new LoraSet(Dictionary modules, ownsTensors = true)

/// The modules of two adapters stacked into per-example factors [2, …] (adapter a first).
let private stacked (a: LoraSet) (b: LoraSet) =
    a.Modules
    |> Seq.map (fun kv ->
        let other = b.Modules[kv.Key]

        kv.Key,
        LoraModule.LowRank(torch.stack ([| kv.Value.A; other.A |]), torch.stack ([| kv.Value.B; other.B |]), 2.0))
    |> dict
    |> Dictionary

let private logits (model: Qwen2ForCausalLM) ids (lora: LoraSet) =
    use out = model.Forward(ids, ForwardOptions(Lora = lora))
    out.Logits.detach().clone()

[<Tests>]
let tests =
    testList "Lora" [
        test "LoraSet.Initialize: PEFT init (A within ±1/√in, B = 0), shapes per module, an exact no-op" {
            use model = micro 1L
            use lora = LoraSet.Initialize(LoraConfig(Rank = 4, Alpha = 8.0), micro', 7L)
            Expect.equal lora.Modules.Count (2 * 7) "7 modules in each of 2 layers"
            let k = lora.Modules["model.layers.1.self_attn.k_proj"]
            Expect.sequenceEqual k.A.shape [| 4L; 32L |] "A [r, in]"
            Expect.sequenceEqual k.B.shape [| 16L; 4L |] "k_proj B [nKV*hd, r]"
            Expect.sequenceEqual lora.Modules["model.layers.0.mlp.down_proj"].A.shape [| 4L; 48L |] "down_proj in = I"
            Expect.equal k.Scale 2.0 "alpha / r"

            for m in lora.Modules.Values do
                let bound = 1.0 / sqrt (float m.A.shape[1])
                Expect.isTrue (m.A.abs().le(torch.tensor bound).all().item<bool>()) "A within the Kaiming bound"
                Expect.equal (m.B.abs().sum().item<float32>()) 0f "B zero"
                Expect.isTrue m.A.requires_grad "trainable"

            use ids = randomIds 2L 64 2 5

            Expect.equal
                (maxAbsDiff (logits model ids lora) (logits model ids null))
                0.0
                "a fresh adapter changes nothing"
        }

        test "Forward: a non-zero adapter changes the logits, and equals merging ΔW = scale·B·A into the weights" {
            use model = micro 3L
            use lora = randomAdapter 4L (List.ofSeq LoraTarget.All)
            use ids = randomIds 5L 64 2 6
            let adapted = logits model ids lora
            Expect.isGreaterThan (maxAbsDiff adapted (logits model ids null)) 1e-2 "changed"
            // the merged twin: W + scale B A, computed in weight space
            use merged = micro 3L

            do
                use _ = torch.no_grad ()
                let state = merged.state_dict ()

                for KeyValue(path, m) in lora.Modules do
                    state[path + ".weight"].add_(m.B.matmul (m.A) * m.Scale) |> ignore

            Expect.isLessThan (maxAbsDiff adapted (logits merged ids null)) 1e-4 "functional = merged"
        }

        test "Forward: per-example adapters in one batch equal running each example with its own adapter" {
            use model = micro 6L
            use a = randomAdapter 7L [ "q_proj"; "v_proj"; "down_proj" ]
            use b = randomAdapter 8L [ "q_proj"; "v_proj"; "down_proj" ]

            use batched = new LoraSet(stacked a b, ownsTensors = true)
            Expect.isTrue batched.IsBatched "batched"
            use ids = randomIds 9L 64 2 5
            let both = logits model ids batched
            let row0 = logits model (ids.narrow (0, 0, 1)) a
            let row1 = logits model (ids.narrow (0, 1, 1)) b
            Expect.isLessThan (maxAbsDiff (both.narrow (0, 0, 1)) row0) 1e-4 "row 0 with adapter a"
            Expect.isLessThan (maxAbsDiff (both.narrow (0, 1, 1)) row1) 1e-4 "row 1 with adapter b"
            use three = randomIds 10L 64 3 5

            let message =
                errorMessage<LlgbmException>(fun () -> logits model three batched |> ignore)

            Expect.stringContains message "2 per-example adapters" "batch size mismatch is an error"
        }

        test "Forward: with k rows per adapter, rows n·k … n·k + k − 1 run under adapter n, as each group alone does" {
            use model = micro 6L
            use a = randomAdapter 7L [ "q_proj"; "v_proj"; "down_proj" ]
            use b = randomAdapter 8L [ "q_proj"; "v_proj"; "down_proj" ]

            let stacked =
                a.Modules
                |> Seq.map (fun kv ->
                    let other = b.Modules[kv.Key]

                    kv.Key,
                    LoraModule.LowRank(
                        torch.stack ([| kv.Value.A; other.A |]),
                        torch.stack ([| kv.Value.B; other.B |]),
                        2.0
                    ))
                |> dict

            use grouped =
                new LoraSet(Dictionary stacked, ownsTensors = true, RowsPerAdapter = 3)

            use ids = randomIds 11L 64 6 5
            let all = logits model ids grouped
            let first = logits model (ids.narrow (0, 0, 3)) a
            let second = logits model (ids.narrow (0, 3, 3)) b
            Expect.isLessThan (maxAbsDiff (all.narrow (0, 0, 3)) first) 1e-4 "rows 0-2 with adapter a"
            Expect.isLessThan (maxAbsDiff (all.narrow (0, 3, 3)) second) 1e-4 "rows 3-5 with adapter b"
            use four = randomIds 12L 64 4 5

            let message =
                errorMessage<LlgbmException>(fun () -> logits model four grouped |> ignore)

            Expect.stringContains message "2 per-example adapters of 3 rows each" "a batch of another size is an error"
        }

        test "Forward: a dense ΔW module equals the low-rank module of the same product" {
            use model = micro 11L
            use low = randomAdapter 12L [ "o_proj"; "up_proj" ]

            let dense =
                low.Modules
                |> Seq.map (fun kv -> kv.Key, LoraModule.Dense(kv.Value.DeltaWeight()))
                |> dict

            use denseSet = new LoraSet(Dictionary dense, ownsTensors = true)
            use ids = randomIds 13L 64 2 5
            Expect.isLessThan (maxAbsDiff (logits model ids low) (logits model ids denseSet)) 1e-4 "same logits"
        }

        test "ValidateFor: keys that match no module and misshapen modules are errors listing them" {
            use model = micro 14L
            use ids = randomIds 15L 64 1 4

            let bad (path: string) (m: LoraModule) =
                use set = new LoraSet(Dictionary(dict [ path, m ]))
                errorMessage<LlgbmException>(fun () -> logits model ids set |> ignore)

            let m = LoraModule.LowRank(torch.zeros (2L, 32L), torch.zeros (32L, 2L), 1.0)

            Expect.stringContains
                (bad "model.layers.5.self_attn.q_proj" m)
                "model.layers.5.self_attn.q_proj matches no module"
                "layer 5 of 2"

            Expect.stringContains
                (bad "model.layers.0.mlp.fc1" m)
                "model.layers.0.mlp.fc1 matches no module"
                "unknown module"

            Expect.stringContains
                (bad "base_model.model.model.layers.0.self_attn.q_proj" m)
                "matches no module"
                "PEFT file keys are not module paths"

            Expect.stringContains
                (bad "model.layers.0.self_attn.k_proj" m)
                "is [32, 32] but the module is [16, 32]"
                "shape"

            let rankMismatch () =
                new LoraSet(
                    Dictionary(
                        dict [
                            "model.layers.0.self_attn.q_proj",
                            LoraModule.LowRank(torch.zeros (2L, 32L), torch.zeros (32L, 3L), 1.0)
                        ]
                    )
                )

            Expect.stringContains (errorMessage<LlgbmException>(rankMismatch >> ignore)) "rank" "A and B ranks differ"
        }

        test "Gradients: a loss on the adapted logits reaches A and B of every layer, and whatever produced them" {
            use model = micro 16L
            // a stand-in generator: the adapter's factors are linear functions of a trainable vector
            use source = torch.randn([| 8L |]).requires_grad_()
            let g = new torch.Generator(17UL)

            let modules =
                [
                    for layer in 0..1 do
                        for m in [ "q_proj"; "up_proj" ] do
                            let path = LoraTarget.Path(layer, m)
                            let struct (o, i) = LoraSet.ShapeOf(micro', path)
                            let projA = torch.randn ([| 2L * i; 8L |], generator = g) * 0.1
                            let projB = torch.randn ([| o * 2L; 8L |], generator = g) * 0.1

                            path,
                            LoraModule.LowRank(
                                projA.matmul(source).reshape(2L, i),
                                projB.matmul(source).reshape(o, 2L),
                                1.0
                            )
                ]
                |> dict

            use set = new LoraSet(Dictionary modules)
            use ids = randomIds 18L 64 2 5
            use out = model.Forward(ids, ForwardOptions(Lora = set))
            out.Logits.pow(torch.tensor 2.0f).mean().backward()

            Expect.isGreaterThan
                (source.grad.abs().sum().item<float32>())
                0f
                "the generator's parameter gets a gradient"
        }

        test "LoraConfig: alpha/r, alpha/√r with rsLoRA, rank and alpha patterns for matching modules only" {
            let c = LoraConfig(Rank = 8, Alpha = 16.0)
            Expect.equal (c.ScaleOf "model.layers.0.self_attn.q_proj") 2.0 "16 / 8"

            Expect.floatClose
                Accuracy.high
                ((LoraConfig(Rank = 16, Alpha = 8.0, UseRsLora = true)).ScaleOf "model.layers.0.mlp.up_proj")
                2.0
                "8 / √16"

            let p =
                LoraConfig(
                    Rank = 8,
                    Alpha = 16.0,
                    RankPattern = readOnlyDict [ "q_proj", 4; "model.layers.1.self_attn.q_proj", 2 ],
                    AlphaPattern = readOnlyDict [ "layers\\.0\\.mlp\\..*", 4.0 ]
                )

            Expect.equal (p.RankOf "model.layers.0.self_attn.q_proj") 4 "bare module name"
            Expect.equal (p.RankOf "model.layers.1.self_attn.q_proj") 2 "full path wins over the bare name"
            Expect.equal (p.RankOf "model.layers.0.self_attn.k_proj") 8 "unmatched: default"
            Expect.equal (p.AlphaOf "model.layers.0.mlp.down_proj") 4.0 "regex key"
            Expect.equal (p.AlphaOf "model.layers.1.mlp.down_proj") 16.0 "regex does not match layer 1"
            Expect.equal (p.ScaleOf "model.layers.1.self_attn.q_proj") 8.0 "16 / 2"

            Expect.equal
                (LoraConfig(TargetModules = [| "q_proj"; "v_proj" |], Layers = [| 1 |]).Paths 2
                 |> List.ofSeq)
                [ "model.layers.1.self_attn.q_proj"; "model.layers.1.self_attn.v_proj" ]
                "paths"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> LoraConfig(TargetModules = [| "fc1" |]).Validate() |> ignore))
                "fc1"
                "unknown target"
        }
    ]
