module LLGBM.Tests.LoraTokenLayoutTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open FsCheck
open FsCheck.FSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestModels

/// ⌈n / w⌉.
let private chunks (n: int64) (w: int64) = (n + w - 1L) / w

/// The architecture and LoRA config of a generated case.
let caseConfigs (case: Generators.LoraTokenCase) =
    let model =
        Qwen2Config(
            VocabSize = 16,
            HiddenSize = case.Hidden,
            IntermediateSize = case.Intermediate,
            NumHiddenLayers = case.Layers,
            NumAttentionHeads = case.KvHeads * case.Group,
            NumKeyValueHeads = case.KvHeads,
            ExplicitHeadDim = System.Nullable case.HeadDim
        )

    let lora =
        LoraConfig(
            Rank = 8,
            Alpha = 16.0,
            TargetModules = [| for (name, _) in case.Ranks -> name |],
            RankPattern = readOnlyDict case.Ranks
        )

    model, lora

/// The layout of a generated case.
let caseLayout (case: Generators.LoraTokenCase) =
    let (model, lora) = caseConfigs case
    LoraTokenLayout.For(model, lora, case.ChunkWidth)

/// The layout's JSON text, parsed back into an object.
let private reparsed (layout: LoraTokenLayout) =
    JsonNode.Parse(layout.ToJsonString()).AsObject()

[<Tests>]
let tests =
    testList "LoraTokenLayout" [
        test "For: the tiny teachers (r 8 on q, k, v, gate, up, down) take [576, 130] with chunks of 128" {
            let lora = LLGBM.Teachers.TeacherTrainingSettings().Lora
            let layout = LoraTokenLayout.For(Qwen2Presets.Tiny, lora, 128)
            // Tiny: H 128, I 352, 4 heads of 32 over 2 KV heads. Per layer, r · (⌈in/128⌉ + ⌈out/128⌉):
            // q 8·(1+1) = 16, k 8·(1+1) = 16 (out 64), v 16, gate 8·(1+3) = 32 (out 352), up 32, down 8·(3+1) = 32.
            Expect.equal layout.Tokens (4L * (16L + 16L + 16L + 32L + 32L + 32L)) "tokens"
            Expect.equal layout.Channels 130 "channels: 128 values + mean + std"
            Expect.sequenceEqual (layout.GridShape()) [ 576L; 130L ] "grid shape"
            Expect.sequenceEqual (layout.GridShape 5L) [ 5L; 576L; 130L ] "batched grid shape"
            Expect.equal layout.MeanChannel 128 "mean channel"
            Expect.equal layout.StdChannel 129 "std channel"
            Expect.equal layout.Modules.Count 24 "modules"
            Expect.isTrue layout.HasPadding "k, v (out 64) and gate, up, down (352) leave padding"
            // With chunks of 64: q 8·(2+2), k 8·(2+1), v 8·(2+1), gate 8·(2+6), up 8·(2+6), down 8·(6+2).
            let narrow = LoraTokenLayout.For(Qwen2Presets.Tiny, lora, 64)
            Expect.equal narrow.Tokens (4L * (32L + 24L + 24L + 64L + 64L + 64L)) "tokens with chunks of 64"
            Expect.equal narrow.Channels 66 "channels with chunks of 64"
        }

        test "For: Qwen2.5-0.5B with the DnD adapters (r 8 on all seven modules, chunks of 128) takes 34368 tokens" {
            let layout =
                LoraTokenLayout.For(Qwen2Presets.Get "qwen2.5-0.5b", LoraConfig(Rank = 8, Alpha = 16.0), 128)
            // H 896 = 7 chunks, I 4864 = 38 chunks, KV 2·64 = 128 = 1 chunk; none padded.
            let perLayer =
                8L * ((7L + 7L) + (7L + 1L) + (7L + 1L) + (7L + 7L) + 3L * (7L + 38L))

            Expect.equal layout.Tokens (24L * perLayer) "tokens"
            Expect.equal layout.Tokens 34368L "the same, written out"
            Expect.isFalse layout.HasPadding "every width is a multiple of 128"
        }

        test "modules go by layer, then q, k, v, o, gate, up, down, whatever order the config lists" {
            let lora =
                LoraConfig(Rank = 2, TargetModules = [| "down_proj"; "v_proj"; "q_proj" |], Layers = [| 1; 0 |])

            let layout = LoraTokenLayout.For(Qwen2Presets.Micro, lora, 16)

            Expect.sequenceEqual
                [ for m in layout.Modules -> m.Path ]
                [
                    "model.layers.0.self_attn.q_proj"
                    "model.layers.0.self_attn.v_proj"
                    "model.layers.0.mlp.down_proj"
                    "model.layers.1.self_attn.q_proj"
                    "model.layers.1.self_attn.v_proj"
                    "model.layers.1.mlp.down_proj"
                ]
                "grid order"

            Expect.sequenceEqual
                [ for b in layout.Blocks -> b.Factor ]
                (List.replicate 6 [ LoraFactor.A; LoraFactor.BTransposed ] |> List.concat)
                "A then Bᵀ of each module"
        }

        test "blocks tile the grid; Locate and the mask agree with a hand computation on Micro" {
            // Micro: H 32, I 48, 4 heads of 8 over 2 KV heads (k out 16). r 3 on k and down, chunks of 10.
            let lora =
                LoraConfig(Rank = 3, Alpha = 6.0, TargetModules = [| "k_proj"; "down_proj" |], Layers = [| 0 |])

            let layout = LoraTokenLayout.For(Qwen2Presets.Micro, lora, 10)
            // k: A [3, 32] → 4 chunks a row (10, 10, 10, 2); Bᵀ [3, 16] → 2 chunks (10, 6).
            // down: A [3, 48] → 5 chunks (…, 8); Bᵀ [3, 32] → 4 chunks (…, 2).
            let expected = [ 0L, 12L; 12L, 6L; 18L, 15L; 33L, 12L ]
            Expect.sequenceEqual [ for b in layout.Blocks -> b.Offset, b.Tokens ] expected "offsets and token counts"
            Expect.equal layout.Tokens 45L "tokens"
            Expect.equal layout.Modules[0].Scale 2.0 "scale alpha / r"

            let struct (block, row, chunk) = layout.Locate 16L

            Expect.equal
                (block.Path, block.Factor, row, chunk)
                ("model.layers.0.self_attn.k_proj", LoraFactor.BTransposed, 2L, 0L)
                "token 16"

            let struct (block, row, chunk) = layout.Locate 44L

            Expect.equal
                (block.Path, block.Factor, row, chunk)
                ("model.layers.0.mlp.down_proj", LoraFactor.BTransposed, 2L, 3L)
                "last token"

            let counts = layout.ValueCounts()
            Expect.sequenceEqual counts[0..3] [ 10L; 10L; 10L; 2L ] "a row of k's A"
            Expect.sequenceEqual counts[12..13] [ 10L; 6L ] "a row of k's Bᵀ"
            Expect.sequenceEqual counts[18..22] [ 10L; 10L; 10L; 10L; 8L ] "a row of down's A"
            use mask = layout.Mask()
            Expect.sequenceEqual mask.shape [| 45L; 12L |] "mask shape"
            let rowOf (t: int64) = [ for c in 0L .. 11L -> mask[t, c].item<bool>() ]

            Expect.sequenceEqual
                (rowOf 3L)
                ([ true; true ] @ List.replicate 8 false @ [ true; true ])
                "2 real values + scales"

            Expect.sequenceEqual (rowOf 0L) (List.replicate 12 true) "a full chunk"

            Expect.equal
                (mask.sum().item<int64>())
                (Array.sum counts + 2L * 45L)
                "true entries: the values and the scales"

            Expect.throwsT<LlgbmException> (fun () -> layout.Locate 45L |> ignore) "past the end"
        }

        testPropertyWithConfig
            (Generators.config 60)
            "JSON round trip: equal layout and identical text; the derived counts match a hand computation"
        <| Prop.forAll (Arb.fromGen Generators.loraTokenCase) (fun case ->
            let layout = caseLayout case
            let back = LoraTokenLayout.FromJson(reparsed layout)
            Expect.equal back layout "equal layout"
            Expect.equal (back.ToJsonString()) (layout.ToJsonString()) "identical JSON"
            Expect.sequenceEqual back.Blocks layout.Blocks "same blocks"
            let (model, _) = caseConfigs case
            let q = int64 (model.NumAttentionHeads * model.HeadDim)
            let kv = int64 (model.NumKeyValueHeads * model.HeadDim)
            let h, i, w = int64 case.Hidden, int64 case.Intermediate, int64 case.ChunkWidth

            let shape name =
                match name with
                | "q_proj" -> q, h
                | "k_proj"
                | "v_proj" -> kv, h
                | "o_proj" -> h, q
                | "gate_proj"
                | "up_proj" -> i, h
                | _ -> h, i

            let perLayer =
                case.Ranks
                |> List.sumBy (fun (name, r) ->
                    let (o, n) = shape name
                    int64 r * (chunks n w + chunks o w))

            Expect.equal layout.Tokens (int64 case.Layers * perLayer) "tokens")

        test "Save and Load through a file" {
            SafetensorsTests.Kit.withTempDir (fun dir ->
                let layout =
                    LoraTokenLayout.For(
                        Qwen2Presets.Micro,
                        LoraConfig(Rank = 4, Alpha = 8.0, UseRsLora = true, Dropout = 0.1),
                        7
                    )

                let path = Path.Combine(dir, "layout.json")
                layout.Save path
                let back = LoraTokenLayout.Load path
                Expect.equal back layout "equal"
                Expect.equal back.Dropout 0.1 "dropout"
                Expect.equal back.Modules[0].Scale (8.0 / 2.0) "rsLoRA scale alpha / √r"
                Expect.isEmpty (Directory.GetFiles(dir, "*" + AtomicFile.TempSuffix)) "no temporary file left")
        }

        test "FromJson names the field that is missing, wrong or inconsistent" {
            let layout =
                LoraTokenLayout.For(Qwen2Presets.Micro, LoraConfig(Rank = 2, TargetModules = [| "q_proj" |]), 8)

            let messageAfter (edit: JsonObject -> unit) =
                let json = reparsed layout
                edit json
                errorMessage<LlgbmException>(fun () -> LoraTokenLayout.FromJson(json, "gen.json") |> ignore)

            let first (json: JsonObject) =
                (json["modules"].AsArray()[0]).AsObject()

            let tokens = messageAfter (fun json -> json["tokens"] <- jnode 999L)
            Expect.stringContains tokens "gen.json: tokens is 999" "tokens"
            Expect.stringContains tokens (string layout.Tokens) "the expected count"

            let offset =
                messageAfter (fun json -> (((first json)["b_t"]).AsObject())["offset"] <- jnode 3L)

            Expect.stringContains offset "modules[0].b_t.offset is 3" "block offset"

            let missing = messageAfter (fun json -> json.Remove "chunk_width" |> ignore)
            Expect.stringContains missing "chunk_width is missing" "missing field"

            let wrongType = messageAfter (fun json -> (first json)["rank"] <- jnode "two")
            Expect.stringContains wrongType "modules[0]: rank is \"two\"" "wrong type"

            let badPath =
                messageAfter (fun json -> (first json)["path"] <- jnode "model.layers.0.attn.q")

            Expect.stringContains badPath "model.layers.0.attn.q names no Qwen2 linear module" "bad path"

            let format = messageAfter (fun json -> json["format"] <- jnode "other")
            Expect.stringContains format "format is \"other\"" "format"

            let reordered =
                let two =
                    LoraTokenLayout.For(Qwen2Presets.Micro, LoraConfig(Rank = 2, TargetModules = [| "q_proj" |]), 8)

                let json = reparsed two
                let modules = json["modules"].AsArray()
                let m0 = modules[0].DeepClone()
                modules[0] <- modules[1].DeepClone()
                modules[1] <- m0
                errorMessage<LlgbmException>(fun () -> LoraTokenLayout.FromJson(json) |> ignore)

            Expect.stringContains reordered "grid order puts model.layers.0.self_attn.q_proj there" "order"
        }

        test "bad chunk widths, duplicate paths and empty layouts are errors" {
            let m = LoraTokenModule("model.layers.0.self_attn.q_proj", 2, 4L, 4L, 1.0)

            let width =
                errorMessage<LlgbmException>(fun () -> LoraTokenLayout(0, [ m ]) |> ignore)

            Expect.stringContains width "chunk width must be at least 1, found 0" "width"

            let twice =
                errorMessage<LlgbmException>(fun () -> LoraTokenLayout(4, [ m; m ]) |> ignore)

            Expect.stringContains twice "appears twice" "duplicate"
            Expect.throwsT<LlgbmException> (fun () -> LoraTokenLayout(4, []) |> ignore) "empty"

            Expect.throwsT<LlgbmException>
                (fun () -> LoraTokenLayout(4, [ LoraTokenModule(m.Path, 0, 4L, 4L, 1.0) ]) |> ignore)
                "rank 0"
        }
    ]
