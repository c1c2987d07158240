module LLGBM.Tests.Qwen2ForCausalLMTests

open Expecto
open TorchSharp
open LLGBM.Checkpoints
open LLGBM.Model
open LLGBM.Tests.TestModels

let private forward (model: Qwen2ForCausalLM) (ids: torch.Tensor) (options: ForwardOptions) =
    model.Forward(ids, options)

let private plain = ForwardOptions()

let private rows (t: torch.Tensor) (from: int64) (until: int64) =
    t.index ([| torch.TensorIndex.Colon; torch.TensorIndex.Slice(from, until) |])

/// Copies every parameter of `source` into `target` (same names), through `map` per name.
let private copyInto
    (target: Qwen2ForCausalLM)
    (source: Qwen2ForCausalLM)
    (map: string -> torch.Tensor -> torch.Tensor)
    =
    use _ = torch.no_grad ()
    let src = source.state_dict ()

    for KeyValue(name, t) in target.state_dict () do
        t.copy_ (map name src[name]) |> ignore

[<Tests>]
let tests =
    testList "Qwen2ForCausalLM" [
        for tied in [ false; true ] do
            test $"Forward matches the plain-array reference implementation (tied = {tied})" {
                let config = Qwen2Presets.Micro |> withFields [ "tie_word_embeddings", jnode tied ]
                let weights = ReferenceQwen2.randomWeights (refConfig config) 42
                use model = new Qwen2ForCausalLM(config)
                loadOracleWeights model weights
                let ids = [| 3; 17; 60; 0; 42; 17; 9 |]

                let expected =
                    ReferenceQwen2.forward (refConfig config) weights (Array.init ids.Length id) ids

                use out =
                    forward
                        model
                        (longs [ 1L; int64 ids.Length ] (ids |> Array.map int64 |> List.ofArray))
                        (ForwardOptions(OutputHiddenStates = true))

                let toTensor (rows: float[][]) =
                    torch.tensor(Array.concat rows).reshape(int64 rows.Length, -1L)

                Expect.isLessThan (maxAbsDiff (out.Logits[0]) (toTensor expected.Logits)) 1e-4 "logits"

                expected.HiddenStates
                |> Array.iteri (fun i h ->
                    Expect.isLessThan (maxAbsDiff (out.HiddenStates[i][0]) (toTensor h)) 1e-4 $"hidden state {i}")
            }

        test "Forward: changing a future token never changes earlier hidden states" {
            use model = micro 1L
            use ids = randomIds 2L 64 2 9
            use changed = ids.clone ()

            changed.index_put_ (torch.tensor ([| 7L; 8L |]), [| torch.TensorIndex.Colon; torch.TensorIndex.Single 6L |])
            |> ignore

            use a = forward model ids (ForwardOptions(OutputHiddenStates = true))
            use b = forward model changed (ForwardOptions(OutputHiddenStates = true))

            for layer in 0 .. a.HiddenStates.Count - 1 do
                Expect.equal
                    (maxAbsDiff (rows a.HiddenStates[layer] 0L 6L) (rows b.HiddenStates[layer] 0L 6L))
                    0.0
                    $"hidden state {layer}, positions 0-5"

            Expect.isGreaterThan
                (maxAbsDiff (rows a.HiddenLast 6L 9L) (rows b.HiddenLast 6L 9L))
                1e-3
                "positions from 6 on do change"
        }

        test "Forward: a left-padded batch equals each sequence run alone" {
            use model = micro 3L
            let lengths = [ 5; 2; 7 ]

            let seqs =
                lengths
                |> List.mapi (fun i n -> (randomIds (10L + int64 i) 64 1 n).data<int64>().ToArray() |> Array.map int)

            let struct (ids, mask) =
                TextGeneration.LeftPad(
                    seqs
                    |> List.map (fun s -> s :> System.Collections.Generic.IReadOnlyList<int>)
                    |> ResizeArray,
                    0
                )

            use ids = ids
            use mask = mask

            use batch =
                forward model ids (ForwardOptions(AttentionMask = mask, Logits = LogitPositions.All))

            seqs
            |> List.iteri (fun b s ->
                use alone =
                    forward model (longs [ 1L; int64 s.Length ] (s |> Array.map int64 |> List.ofArray)) plain

                let offset = 7L - int64 s.Length

                let fromBatch =
                    batch.Logits.index ([| torch.TensorIndex.Single(int64 b); torch.TensorIndex.Slice(offset) |])

                Expect.isLessThan (maxAbsDiff fromBatch (alone.Logits[0])) 1e-4 $"row {b} logits"

                let h =
                    batch.HiddenLast.index ([| torch.TensorIndex.Single(int64 b); torch.TensorIndex.Slice(offset) |])

                Expect.isLessThan (maxAbsDiff h (alone.HiddenLast[0])) 1e-4 $"row {b} hidden")
        }

        test "Forward: a right-padded batch equals each sequence run alone, and Last picks the last real token" {
            use model = micro 4L
            use ids = randomIds 5L 64 2 6
            use mask = longs [ 2L; 6L ] [ 1L; 1L; 1L; 1L; 0L; 0L; 1L; 1L; 1L; 1L; 1L; 1L ]

            use batch =
                forward model ids (ForwardOptions(AttentionMask = mask, Logits = LogitPositions.Last))

            use alone0 =
                forward model (ids.index ([| torch.TensorIndex.Slice(0L, 1L); torch.TensorIndex.Slice(0L, 4L) |])) plain

            use alone1 = forward model (ids.index ([| torch.TensorIndex.Slice(1L, 2L) |])) plain
            Expect.isLessThan (maxAbsDiff (batch.Logits[0, 0]) (alone0.Logits[0, 3])) 1e-4 "row 0: last real token is 3"
            Expect.isLessThan (maxAbsDiff (batch.Logits[1, 0]) (alone1.Logits[0, 5])) 1e-4 "row 1: last real token is 5"
            Expect.sequenceEqual (batch.LastTokenIndex.data<int64>().ToArray()) [| 3L; 5L |] "last real indices"
        }

        test "Forward: KV-cache decoding equals a full forward, with left padding" {
            use model = micro 6L
            use ids = randomIds 7L 64 2 8

            use mask =
                longs [ 2L; 8L ] [ 0L; 0L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L ]

            use full = forward model ids (ForwardOptions(AttentionMask = mask))
            use cache = new KvCache(model.Config.NumHiddenLayers)

            use prefill =
                forward model (rows ids 0L 4L) (ForwardOptions(AttentionMask = rows mask 0L 4L, Cache = cache))

            Expect.isLessThan
                (maxAbsDiff (rows prefill.Logits 2L 4L) (rows full.Logits 2L 4L))
                1e-4
                "prefill (real positions of both rows)"

            for t in 4L .. 7L do
                use step =
                    forward
                        model
                        (rows ids t (t + 1L))
                        (ForwardOptions(AttentionMask = rows mask 0L (t + 1L), Cache = cache))

                Expect.isLessThan (maxAbsDiff step.Logits (rows full.Logits t (t + 1L))) 1e-4 $"step {t}"

            Expect.equal cache.Length 8L "cache holds every position"
        }

        test "Forward: grouped-query attention equals multi-head attention with repeated K/V heads" {
            use gqa = micro 8L

            let mhaConfig =
                Qwen2Presets.Micro
                |> withFields [ "num_key_value_heads", jnode Qwen2Presets.Micro.NumAttentionHeads ]

            use mha = new Qwen2ForCausalLM(mhaConfig)
            let hd = int64 Qwen2Presets.Micro.HeadDim
            let group = int64 Qwen2Presets.Micro.GroupSize

            copyInto mha gqa (fun name t ->
                if name.Contains "k_proj" || name.Contains "v_proj" then
                    // rows are grouped per KV head: [nKV*hd, ...] -> [nKV, hd, ...] -> repeat each head `group` times
                    let shape = Array.append [| t.shape[0] / hd; hd |] t.shape[1..]

                    t
                        .reshape(shape)
                        .repeat_interleave(group, dim = System.Nullable 0L)
                        .reshape(Array.append [| -1L |] t.shape[1..])
                else
                    t)

            use ids = randomIds 9L 64 2 7
            use a = forward gqa ids plain
            use b = forward mha ids plain
            Expect.isLessThan (maxAbsDiff a.Logits b.Logits) 1e-4 "logits"
        }

        test "Forward: SDPA and eager attention agree, with and without padding" {
            use model = micro 10L
            use ids = randomIds 11L 64 2 6
            use mask = longs [ 2L; 6L ] [ 0L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 0L ]

            for m in [ null; mask ] do
                use a =
                    forward model ids (ForwardOptions(AttentionMask = m, Attention = AttentionImplementation.Sdpa))

                use b =
                    forward model ids (ForwardOptions(AttentionMask = m, Attention = AttentionImplementation.Eager))

                Expect.isLessThan (maxAbsDiff a.Logits b.Logits) 1e-4 "logits"
                Expect.isFalse (a.Logits.isnan().any().item<bool>()) "no NaN, even in padding rows"
        }

        test "Forward: hidden states are N+1, embeddings first and the final-norm state last" {
            use model = micro 12L
            use ids = randomIds 13L 64 1 5

            use out =
                forward model ids (ForwardOptions(OutputHiddenStates = true, Logits = LogitPositions.None))

            Expect.equal out.HiddenStates.Count (model.Config.NumHiddenLayers + 1) "count"
            use emb = model.model.embed_tokens.forward ids
            Expect.equal (maxAbsDiff out.HiddenStates[0] emb) 0.0 "[0] is the embedding output"

            Expect.equal
                (maxAbsDiff out.HiddenStates[out.HiddenStates.Count - 1] out.HiddenLast)
                0.0
                "last is HiddenLast"
            // the final-norm state has unit RMS before the norm weight: divide it out and check
            use unscaled = out.HiddenLast / model.model.norm.weight
            let rms = (unscaled * unscaled).mean([| -1L |]).sqrt()
            Expect.isLessThan (maxAbsDiff rms (torch.ones_like rms)) 1e-3 "HiddenLast is after the final norm"
            Expect.isNull out.Logits "no logits asked"
        }

        test "Forward: logits at chosen positions equal the full logits gathered there" {
            use model = micro 14L
            use ids = randomIds 15L 64 2 6
            use all = forward model ids plain
            use index = longs [ 2L; 2L ] [ 0L; 4L; 5L; 2L ]
            use at = forward model ids (ForwardOptions(Logits = LogitPositions.At index))
            Expect.isLessThan (maxAbsDiff (at.Logits[0, 1]) (all.Logits[0, 4])) 1e-5 "row 0 position 4"
            Expect.isLessThan (maxAbsDiff (at.Logits[1, 1]) (all.Logits[1, 2])) 1e-5 "row 1 position 2"
            use last = forward model ids (ForwardOptions(Logits = LogitPositions.Last))
            Expect.isLessThan (maxAbsDiff (last.Logits[1, 0]) (all.Logits[1, 5])) 1e-5 "last"
        }

        test "Forward: tied embeddings use embed_tokens as the head and have no lm_head parameter" {
            let config = Qwen2Presets.Micro |> withFields [ "tie_word_embeddings", jnode true ]
            use model = new Qwen2ForCausalLM(config)
            randomize model 16L
            Expect.isFalse (model.state_dict().ContainsKey "lm_head.weight") "no lm_head.weight"
            use ids = randomIds 17L 64 1 4
            use out = forward model ids plain
            use expected = out.HiddenLast.matmul (model.model.embed_tokens.weight.T)
            Expect.isLessThan (maxAbsDiff out.Logits expected) 1e-4 "logits = h Eᵀ"
        }

        test "Forward: an untied model uses its own lm_head" {
            use model = micro 18L
            use ids = randomIds 19L 64 1 4
            use out = forward model ids plain
            use expected = out.HiddenLast.matmul (model.lm_head.weight.T)
            use tiedGuess = out.HiddenLast.matmul (model.model.embed_tokens.weight.T)
            Expect.isLessThan (maxAbsDiff out.Logits expected) 1e-4 "logits = h Wᵀ"
            Expect.isGreaterThan (maxAbsDiff out.Logits tiedGuess) 1e-2 "not the embedding matrix"
        }

        test "Forward: a model built inside a dispose scope still runs after the scope ends" {
            let built =
                use _ = torch.NewDisposeScope()
                micro 22L

            use built = built
            use reference = micro 22L
            use ids = randomIds 23L 64 2 5
            use a = forward built ids plain
            use b = forward reference ids plain
            Expect.equal (maxAbsDiff a.Logits b.Logits) 0.0 "same logits as a model built outside any scope"
        }

        test "Forward: a bad attention mask shape is a clear error" {
            use model = micro 20L
            use ids = randomIds 21L 64 2 5
            use mask = torch.ones (2L, 4L, dtype = torch.int64)

            let e =
                Expect.throwsT<LLGBM.LlgbmException>(fun () ->
                    forward model ids (ForwardOptions(AttentionMask = mask)) |> ignore)

            ()
        }

        test "InitializeWeights: N(0, 0.02) weights, zero biases, unit norms, deterministic" {
            use a = new Qwen2ForCausalLM(Qwen2Presets.Micro)
            use b = new Qwen2ForCausalLM(Qwen2Presets.Micro)
            a.InitializeWeights 5L
            b.InitializeWeights 5L
            let sa = a.state_dict ()

            for KeyValue(name, t) in b.state_dict () do
                Expect.equal (maxAbsDiff t sa[name]) 0.0 $"{name} is deterministic"

            Expect.equal (sa["model.layers.0.self_attn.q_proj.bias"].abs().sum().item<float32>()) 0f "bias zero"
            Expect.equal (sa["model.norm.weight"].mean().item<float32>()) 1f "norm ones"
            let std = sa["model.embed_tokens.weight"].std().item<float32>()
            Expect.floatClose { absolute = 0.002; relative = 0.0 } (float std) 0.02 "std 0.02"
        }
    ]
