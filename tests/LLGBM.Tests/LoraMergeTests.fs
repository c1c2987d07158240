module LLGBM.Tests.LoraMergeTests

open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestModels

let private config = Qwen2Presets.Micro

let private everyModule = [
    for layer in 0..1 do
        for name in LoraTarget.All -> layer, name
]

/// A copy of every weight of the model, by name.
let private snapshot (model: Qwen2ForCausalLM) =
    use _ = torch.no_grad ()

    [ for KeyValue(name, t) in model.state_dict () -> name, t.detach().clone() ]
    |> Map.ofList

/// The names of the weights that differ (at all) from the snapshot.
let private changed (model: Qwen2ForCausalLM) (before: Map<string, torch.Tensor>) = [
    for KeyValue(name, t) in model.state_dict () do
        if not (t.eq(before[name]).all().item<bool>()) then
            yield name
]

[<Tests>]
let tests =
    testList "LoraMerge.IntoBase" [
        test "the merged model computes the base's logits with the adapter applied functionally, not the base's" {
            use baseModel = micro 11L
            use merged = micro 11L
            use lowRank = randomLora config 3L 4L 0.2 1.5 everyModule
            // One dense module among the low-rank ones.
            let densePath = "model.layers.1.self_attn.o_proj"
            use dense = torch.randn (32L, 32L, generator = new torch.Generator(4UL)) * 0.1

            use lora =
                new LoraSet(
                    readOnlyDict [
                        for KeyValue(path, m) in lowRank.Modules ->
                            path, (if path = densePath then LoraModule.Dense dense else m)
                    ]
                )

            use ids = randomIds 5L config.VocabSize 2 7
            use _ = torch.no_grad ()
            use plain = baseModel.Forward ids
            use adapted = baseModel.Forward(ids, ForwardOptions(Lora = lora))
            LoraMerge.IntoBase(merged, lora)
            use mergedOut = merged.Forward ids
            let gap = maxAbsDiff mergedOut.Logits adapted.Logits
            Expect.isLessThan gap 1e-4 "merged = base + functional adapter"
            Expect.isGreaterThan (maxAbsDiff plain.Logits adapted.Logits) 1e-2 "the adapter changes the logits"
        }
        test "a weight gains scale · B · A (computed here by a plain triple loop) and no other weight changes" {
            use model = micro 12L
            let before = snapshot model
            let (r, o, i) = (2, 16, 32)
            let a = Array.init (r * i) (fun k -> float32 (k % 7 - 3) * 0.05f)
            let b = Array.init (o * r) (fun k -> float32 (k % 5 - 2) * 0.1f)
            let path = "model.layers.0.self_attn.k_proj"

            use lora =
                new LoraSet(
                    readOnlyDict [
                        path,
                        LoraModule.LowRank(
                            torch.tensor(a).reshape(int64 r, int64 i),
                            torch.tensor(b).reshape(int64 o, int64 r),
                            0.5
                        )
                    ],
                    true
                )

            LoraMerge.IntoBase(model, lora)
            Expect.equal (changed model before) [ path + ".weight" ] "only the adapted weight"
            let after = model.state_dict().[path + ".weight"].data<float32>().ToArray()
            let original = before[path + ".weight"].data<float32>().ToArray()

            for row in 0 .. o - 1 do
                for col in 0 .. i - 1 do
                    let mutable delta = 0.0

                    for k in 0 .. r - 1 do
                        delta <- delta + float b[row * r + k] * float a[k * i + col]

                    let expected = float original[row * i + col] + 0.5 * delta

                    Expect.floatClose
                        { absolute = 1e-6; relative = 1e-6 }
                        (float after[row * i + col])
                        expected
                        $"weight [{row}, {col}]"
        }
        test "merging a fresh PEFT-initialised adapter (B = 0) changes no weight" {
            use model = micro 13L
            let before = snapshot model
            use lora = LoraSet.Initialize(LoraConfig(), config, 1L)
            LoraMerge.IntoBase(model, lora)
            Expect.isEmpty (changed model before) "every weight as it was"
        }
        test "an adapter that does not fit the model, or a batched one, is refused before any weight changes" {
            use model = micro 14L
            let before = snapshot model

            use lora =
                new LoraSet(
                    readOnlyDict [
                        "model.layers.0.self_attn.q_proj",
                        LoraModule.LowRank(torch.ones (2L, 32L), torch.ones (32L, 2L), 1.0)
                        "model.layers.5.self_attn.q_proj",
                        LoraModule.LowRank(torch.ones (2L, 32L), torch.ones (32L, 2L), 1.0)
                    ],
                    true
                )

            let message =
                errorMessage<LlgbmException>(fun () -> LoraMerge.IntoBase(model, lora))

            Expect.stringContains message "model.layers.5.self_attn.q_proj" "names the key"

            use batched =
                new LoraSet(
                    readOnlyDict [
                        "model.layers.0.self_attn.q_proj",
                        LoraModule.LowRank(torch.ones (2L, 2L, 32L), torch.ones (2L, 32L, 2L), 1.0)
                    ],
                    true
                )

            let message =
                errorMessage<LlgbmException>(fun () -> LoraMerge.IntoBase(model, batched))

            Expect.stringContains message "per-example" "says why"
            Expect.isEmpty (changed model before) "every weight as it was"
        }
    ]
