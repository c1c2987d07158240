module LLGBM.Tests.Qwen2CheckpointTests

open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Model
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

let private logitsOf (model: Qwen2ForCausalLM) =
    use ids = randomIds 99L model.Config.VocabSize 2 6
    use out = model.Forward ids
    out.Logits.detach().clone()

/// Rewrites the weights of a saved checkpoint through `edit` (name -> tensor list), keeping config.json.
let private editWeights (dir: string) (edit: (string * torch.Tensor) list -> (string * torch.Tensor) list) =
    let tensors =
        use reader = CheckpointWeights.Open dir
        reader.Names |> Seq.map (fun n -> n, reader.Read n) |> List.ofSeq

    CheckpointWeights.Save(
        dir,
        edit tensors
        |> Seq.map (fun (n, t) -> System.Collections.Generic.KeyValuePair.Create(n, t))
    )

let private loadError dir =
    errorMessage<LlgbmException>(fun () -> Qwen2Checkpoint.Load dir |> ignore)

[<Tests>]
let tests =
    testList "Qwen2Checkpoint" [
        test "Save then Load reproduces the model exactly (untied, float32)" {
            withTempDir (fun dir ->
                use model = micro 1L
                Qwen2Checkpoint.Save(model, dir)
                Expect.isTrue (File.Exists(Path.Combine(dir, "config.json"))) "config.json"
                Expect.isTrue (File.Exists(Path.Combine(dir, "model.safetensors"))) "model.safetensors"
                use loaded = Qwen2Checkpoint.Load dir
                Expect.equal (maxAbsDiff (logitsOf loaded) (logitsOf model)) 0.0 "logits"
                use reader = CheckpointWeights.Open dir
                Expect.contains reader.Names "lm_head.weight" "an untied checkpoint stores its head"

                Expect.equal
                    (maxAbsDiff (reader.Read "lm_head.weight") model.lm_head.weight)
                    0.0
                    "and the model uses it")
        }

        test "Load: a tied checkpoint has no lm_head.weight and loads" {
            withTempDir (fun dir ->
                let config = Qwen2Presets.Micro |> withFields [ "tie_word_embeddings", jnode true ]
                use model = new Qwen2ForCausalLM(config)
                randomize model 2L
                Qwen2Checkpoint.Save(model, dir)
                use reader = CheckpointWeights.Open dir
                Expect.isFalse (reader.Contains "lm_head.weight") "omitted"
                use loaded = Qwen2Checkpoint.Load dir
                Expect.isTrue loaded.Config.TieWordEmbeddings "tied"
                Expect.equal (maxAbsDiff (logitsOf loaded) (logitsOf model)) 0.0 "logits")
        }

        test "Load: a tied checkpoint that also stores lm_head.weight must store the embedding there" {
            withTempDir (fun dir ->
                let config = Qwen2Presets.Micro |> withFields [ "tie_word_embeddings", jnode true ]
                use model = new Qwen2ForCausalLM(config)
                randomize model 3L
                Qwen2Checkpoint.Save(model, dir)

                editWeights dir (fun ts ->
                    ("lm_head.weight",
                     (ts |> List.find (fun (n, _) -> n = "model.embed_tokens.weight") |> snd).clone())
                    :: ts)

                use loaded = Qwen2Checkpoint.Load dir
                Expect.equal (maxAbsDiff (logitsOf loaded) (logitsOf model)) 0.0 "same head"

                editWeights dir (fun ts ->
                    ts
                    |> List.map (fun (n, t) -> if n = "lm_head.weight" then n, t + 1.0f else n, t))

                let message = loadError dir
                Expect.stringContains message "lm_head.weight differs" "named")
        }

        test "Load: missing, unexpected and misshapen tensors are all listed by name" {
            withTempDir (fun dir ->
                use model = micro 4L
                Qwen2Checkpoint.Save(model, dir)

                editWeights dir (fun ts ->
                    ts
                    |> List.filter (fun (n, _) -> n <> "model.layers.1.mlp.up_proj.weight")
                    |> List.map (fun (n, t) ->
                        if n = "model.norm.weight" then
                            n, torch.ones (33L)
                        else
                            n, t)
                    |> List.append [ "model.layers.0.self_attn.o_proj.bias", torch.zeros (32L) ])

                let message = loadError dir
                Expect.stringContains message "missing tensors: model.layers.1.mlp.up_proj.weight" "missing"

                Expect.stringContains
                    message
                    "unexpected tensors: model.layers.0.self_attn.o_proj.bias"
                    "unexpected (o_proj has no bias)"

                Expect.stringContains message "model.norm.weight (checkpoint [33], model [32])" "shape mismatch"
                Expect.stringContains message dir "names the checkpoint")
        }

        test "Load: a sharded checkpoint equals the same weights in one file" {
            withTempDir (fun dir ->
                use model = micro 5L
                let single = Path.Combine(dir, "single")
                let sharded = Path.Combine(dir, "sharded")
                Qwen2Checkpoint.Save(model, single)
                Qwen2Checkpoint.Save(model, sharded, maxShardBytes = 16000L)
                let shards = Directory.GetFiles(sharded, "model-*-of-*.safetensors")
                Expect.isGreaterThan shards.Length 2 "several shards"
                Expect.isTrue (File.Exists(Path.Combine(sharded, "model.safetensors.index.json"))) "index"
                Expect.isFalse (File.Exists(Path.Combine(sharded, "model.safetensors"))) "no single file"
                use a = Qwen2Checkpoint.Load single
                use b = Qwen2Checkpoint.Load sharded
                Expect.equal (maxAbsDiff (logitsOf a) (logitsOf b)) 0.0 "identical logits")
        }

        test "Load: a bf16 checkpoint and its f32 twin agree to bf16 precision" {
            withTempDir (fun dir ->
                use model = micro 6L
                let f32 = Path.Combine(dir, "f32")
                let bf16 = Path.Combine(dir, "bf16")
                Qwen2Checkpoint.Save(model, f32)
                Qwen2Checkpoint.Save(model, bf16, storage = torch.bfloat16)

                Expect.stringContains
                    (File.ReadAllText(Path.Combine(bf16, "config.json")))
                    "\"bfloat16\""
                    "torch_dtype"

                Expect.isLessThan
                    (FileInfo(Path.Combine(bf16, "model.safetensors")).Length)
                    (FileInfo(Path.Combine(f32, "model.safetensors")).Length * 6L / 10L)
                    "half the bytes"

                use a = Qwen2Checkpoint.Load f32
                use b = Qwen2Checkpoint.Load bf16
                Expect.equal b.Dtype torch.float32 "bf16 weights are upcast on load"
                // every loaded weight is the f32 weight rounded to bf16: relative error at most 2^-8
                for KeyValue(name, t) in b.state_dict () do
                    let reference = a.state_dict().[name]
                    let bound: torch.Tensor = reference.abs () * (1.0 / 256.0) + 1e-30
                    Expect.isTrue ((t - reference).abs().le(bound).all().item<bool>()) $"{name} within bf16 rounding"

                let la = logitsOf a
                let lb = logitsOf b
                let scale = la.abs().max().item<float32>() |> float
                let diff = maxAbsDiff la lb
                Expect.isGreaterThan diff 0.0 "the rounding is real"
                Expect.isLessThan (diff / scale) 0.05 "logits agree to bf16 precision")
        }

        test "Load: a directory without config.json or weights is a clear error" {
            withTempDir (fun dir ->
                Expect.stringContains
                    (loadError (Path.Combine(dir, "absent")))
                    "no such checkpoint directory"
                    "no directory"

                Expect.stringContains (loadError dir) "config.json" "no config"
                File.WriteAllText(Path.Combine(dir, "config.json"), Qwen2Presets.Micro.ToJsonString())
                Expect.stringContains (loadError dir) "model.safetensors" "no weights")
        }
    ]
