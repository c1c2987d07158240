module LLGBM.Tests.Qwen2PresetsTests

open Expecto
open TorchSharp
open LLGBM.Checkpoints
open LLGBM.Model

/// The parameter table of Qwen2.5-0.5B written by hand from its config.json (docs/reference.md §1): H 896, I 4864, 24
/// layers, 14 heads of 64, 2 KV heads (k/v width 128), vocab 151936, tied embeddings (no lm_head.weight).
let expectedQwen25HalfB =
    [
        yield "model.embed_tokens.weight", [ 151936L; 896L ]
        for i in 0..23 do
            let p = $"model.layers.{i}."
            yield p + "self_attn.q_proj.weight", [ 896L; 896L ]
            yield p + "self_attn.q_proj.bias", [ 896L ]
            yield p + "self_attn.k_proj.weight", [ 128L; 896L ]
            yield p + "self_attn.k_proj.bias", [ 128L ]
            yield p + "self_attn.v_proj.weight", [ 128L; 896L ]
            yield p + "self_attn.v_proj.bias", [ 128L ]
            yield p + "self_attn.o_proj.weight", [ 896L; 896L ]
            yield p + "mlp.gate_proj.weight", [ 4864L; 896L ]
            yield p + "mlp.up_proj.weight", [ 4864L; 896L ]
            yield p + "mlp.down_proj.weight", [ 896L; 4864L ]
            yield p + "input_layernorm.weight", [ 896L ]
            yield p + "post_attention_layernorm.weight", [ 896L ]
        yield "model.norm.weight", [ 896L ]
    ]
    |> Map.ofList

[<Tests>]
let tests =
    testList "Qwen2Presets" [
        test "Qwen2Presets.Qwen25_0_5B state dict equals the hand-written table, built on the meta device" {
            use model = new Qwen2ForCausalLM(Qwen2Presets.Qwen25_0_5B, torch.META)

            let actual =
                model.state_dict ()
                |> Seq.map (fun kv -> kv.Key, List.ofArray kv.Value.shape)
                |> Map.ofSeq

            Expect.isTrue (model.parameters () |> Seq.forall (fun p -> p.is_meta)) "no parameter is allocated"

            let missing = Set.difference (Set expectedQwen25HalfB.Keys) (Set actual.Keys)
            let extra = Set.difference (Set actual.Keys) (Set expectedQwen25HalfB.Keys)
            Expect.isEmpty missing "names missing from the model"
            Expect.isEmpty extra "names the model has beyond the table (inv_freq must be non-persistent)"

            for KeyValue(name, shape) in expectedQwen25HalfB do
                Expect.equal actual[name] shape name
        }
        test "Qwen2Presets.Qwen25_0_5B has the published 494,032,768 parameters" {
            use model = new Qwen2ForCausalLM(Qwen2Presets.Qwen25_0_5B, torch.META)
            let total = model.parameters () |> Seq.sumBy (fun p -> p.numel ())
            Expect.equal total 494032768L "Qwen2.5-0.5B parameter count"
        }
        test "Qwen2Presets head widths follow the published configs" {
            Expect.equal Qwen2Presets.Qwen25_0_5B.HeadDim 64 "0.5B"
            Expect.equal Qwen2Presets.Qwen25_1_5B.HeadDim 128 "1.5B"
            Expect.equal Qwen2Presets.Qwen25_7B.HeadDim 128 "7B"
            Expect.equal Qwen2Presets.Qwen25_7B.GroupSize 7 "7B: 28 heads over 4 KV heads"
        }
        test "Qwen2Presets.Get names the known presets when the name is unknown" {
            let e =
                Expect.throwsT<LLGBM.LlgbmException>(fun () -> Qwen2Presets.Get "qwen9" |> ignore)

            ()
        }
    ]
