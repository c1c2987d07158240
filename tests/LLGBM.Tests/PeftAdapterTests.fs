module LLGBM.Tests.PeftAdapterTests

open System
open System.Buffers.Binary
open System.IO
open System.Text
open System.Text.Json
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

/// The micro model: H 32, I 48, 2 layers, 4 heads of 8 over 2 KV heads.
let private micro = Qwen2Presets.Micro

/// (out, in) of each linear module of the micro model, written out by hand: q and o 32×32, k and v 16×32 (2 KV heads
/// of 8), gate and up 48×32, down 32×48.
let private shapeOf name =
    match name with
    | "q_proj"
    | "o_proj" -> 32, 32
    | "k_proj"
    | "v_proj" -> 16, 32
    | "gate_proj"
    | "up_proj" -> 48, 32
    | "down_proj" -> 32, 48
    | other -> failwithf "no module %s" other

let private allModules = [ "q_proj"; "k_proj"; "v_proj"; "o_proj"; "gate_proj"; "up_proj"; "down_proj" ]

let private pathOf layer name =
    let block =
        if List.contains name [ "q_proj"; "k_proj"; "v_proj"; "o_proj" ] then
            "self_attn"
        else
            "mlp"

    sprintf "model.layers.%d.%s.%s" layer block name

/// PEFT's saved key of a factor ("A" or "B").
let private keyOf layer name factor =
    sprintf "base_model.model.%s.lora_%s.weight" (pathOf layer name) factor

/// Hand-chosen values for a [rows, cols] factor: element (i, j) is salt + i/10 + j/1000 (rounded to float32).
let private values (rows: int) (cols: int) (salt: float32) =
    Array.init (rows * cols) (fun k -> salt + float32 (k / cols) * 0.1f + float32 (k % cols) * 0.001f)

/// A distinct salt per module, so that no two modules hold the same values.
let private saltOf layer name =
    float32 (layer * 10 + List.findIndex ((=) name) allModules + 1)

/// A tensor to write: key, shape, row-major float32 values.
type private Stored = {
    Key: string
    Shape: int list
    Values: float32[]
}

/// The A [r, in] and B [out, r] of a module with hand-chosen values (B's salt is negated so that A and B differ).
let private factors layer name rank = [
    let (o, i) = shapeOf name
    let salt = saltOf layer name

    {
        Key = keyOf layer name "A"
        Shape = [ rank; i ]
        Values = values rank i salt
    }

    {
        Key = keyOf layer name "B"
        Shape = [ o; rank ]
        Values = values o rank (-salt)
    }
]

/// A safetensors file built byte by byte: the header JSON with {"format":"pt"} metadata, then the F32 data in order.
let private safetensorsImage (tensors: Stored list) =
    let ends =
        tensors |> List.scan (fun offset t -> offset + 4L * int64 t.Values.Length) 0L

    let entries = [
        for (t, b, e) in List.zip3 tensors (List.take tensors.Length ends) (List.tail ends) ->
            entry t.Key "F32" (t.Shape |> List.map int64) b e
    ]

    let data =
        tensors
        |> Array.ofList
        |> Array.collect (fun t -> t.Values |> Array.collect (fun (x: float32) -> BitConverter.GetBytes x))

    imageOf (header ("\"__metadata__\":{\"format\":\"pt\"}" :: entries)) data

/// adapter_config.json as PEFT 0.13 writes it (keys sorted, two-space indent, every field of its LoraConfig), with
/// some fields replaced or added (raw JSON values).
let private peftConfig (fields: (string * string) list) =
    let defaults = [
        "alpha_pattern", "{}"
        "auto_mapping", "null"
        "base_model_name_or_path", "\"Qwen/Qwen2.5-0.5B-Instruct\""
        "bias", "\"none\""
        "fan_in_fan_out", "false"
        "inference_mode", "true"
        "init_lora_weights", "true"
        "layer_replication", "null"
        "layers_pattern", "null"
        "layers_to_transform", "null"
        "loftq_config", "{}"
        "lora_alpha", "16"
        "lora_dropout", "0.05"
        "megatron_config", "null"
        "megatron_core", "\"megatron.core\""
        "modules_to_save", "null"
        "peft_type", "\"LORA\""
        "r", "4"
        "rank_pattern", "{}"
        "revision", "null"
        "target_modules", "[\n    \"v_proj\",\n    \"q_proj\"\n  ]"
        "task_type", "\"CAUSAL_LM\""
        "use_dora", "false"
        "use_rslora", "false"
    ]

    let given = Map.ofList fields

    let keys =
        (List.map fst defaults) @ (List.map fst fields) |> List.distinct |> List.sort

    let value key =
        given.TryFind key
        |> Option.defaultWith (fun () -> defaults |> List.find (fst >> (=) key) |> snd)

    "{\n"
    + (keys
       |> List.map (fun k -> sprintf "  \"%s\": %s" k (value k))
       |> String.concat ",\n")
    + "\n}"

let private writeAdapter dir (fields: (string * string) list) (tensors: Stored list) =
    File.WriteAllText(Path.Combine(dir, "adapter_config.json"), peftConfig fields)
    File.WriteAllBytes(Path.Combine(dir, "adapter_model.safetensors"), safetensorsImage tensors)

/// q_proj and v_proj of both layers at the given rank: what the default config targets.
let private qvTensors rank = [
    for layer in 0..1 do
        for name in [ "q_proj"; "v_proj" ] do
            yield! factors layer name rank
]

let private floats (t: torch.Tensor) =
    t.contiguous().data<float32>().ToArray()

/// Checks a module's factors against the hand-chosen values of `factors`.
let private expectHandValues (set: LoraSet) layer name rank =
    let (o, i) = shapeOf name
    let m = set.Modules[pathOf layer name]
    Expect.equal m.A.shape [| int64 rank; int64 i |] $"A of {pathOf layer name} is [r, in]"
    Expect.equal m.B.shape [| int64 o; int64 rank |] $"B of {pathOf layer name} is [out, r]"
    Expect.sequenceEqual (floats m.A) (values rank i (saltOf layer name)) $"A of {pathOf layer name}"
    Expect.sequenceEqual (floats m.B) (values o rank (-(saltOf layer name))) $"B of {pathOf layer name}"

let private loadError dir =
    errorMessage<LlgbmException>(fun () -> PeftAdapter.Load(dir, micro) |> ignore)

/// A LoRA set over (layer, module, rank, scale) with the hand-chosen values of `factors`; owns its tensors.
let private handSet (modules: (int * string * int * float) list) =
    let entries =
        readOnlyDict [
            for (layer, name, rank, scale) in modules ->
                let (o, i) = shapeOf name
                let salt = saltOf layer name
                let a = torch.tensor(values rank i salt).reshape(int64 rank, int64 i)
                let b = torch.tensor(values o rank (-salt)).reshape(int64 o, int64 rank)
                pathOf layer name, LoraModule.LowRank(a, b, scale)
        ]

    new LoraSet(entries, true)

/// The header JSON of a safetensors file and a function giving the bytes of [begin, end) of its data buffer, read
/// straight from the file.
let private readSafetensors (path: string) =
    let bytes = File.ReadAllBytes path
    let n = int (BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(bytes, 0, 8)))
    let header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, n))
    header, (fun (b: int64) (e: int64) -> bytes[8 + n + int b .. 8 + n + int e - 1])

let private shapeIn (entry: JsonElement) = [ for d in entry.GetProperty("shape").EnumerateArray() -> d.GetInt32() ]

let private offsetsIn (entry: JsonElement) =
    let o = entry.GetProperty("data_offsets")
    o[0].GetInt64(), o[1].GetInt64()

let private f32Values (bytes: byte[]) =
    Array.init (bytes.Length / 4) (fun k -> BitConverter.ToSingle(bytes, 4 * k))

[<Tests>]
let loadTests =
    testList "PeftAdapter.Load" [
        test "reads a directory as PEFT writes it: the hand-written values, scale alpha / r, the set owns its tensors" {
            withTempDir (fun dir ->
                writeAdapter dir [] (qvTensors 4)
                let struct (config, set) = PeftAdapter.Load(dir, micro)

                Expect.equal
                    (set.Modules.Keys |> Seq.sort |> List.ofSeq)
                    [
                        "model.layers.0.self_attn.q_proj"
                        "model.layers.0.self_attn.v_proj"
                        "model.layers.1.self_attn.q_proj"
                        "model.layers.1.self_attn.v_proj"
                    ]
                    "one module per key pair"

                for layer in 0..1 do
                    for name in [ "q_proj"; "v_proj" ] do
                        expectHandValues set layer name 4
                        Expect.equal (set.Modules[pathOf layer name].Scale) 4.0 "16 / 4"

                Expect.equal config.Rank 4 "r"
                Expect.equal config.Alpha 16.0 "lora_alpha"
                Expect.equal config.Dropout 0.05 "lora_dropout"
                Expect.equal set.Dropout 0.05 "the set's dropout"
                Expect.isFalse config.UseRsLora "use_rslora"
                Expect.equal (List.ofSeq config.TargetModules) [ "q_proj"; "v_proj" ] "target_modules"
                Expect.isNull config.Layers "every layer"
                let a = set.Modules["model.layers.0.self_attn.q_proj"].A
                set.Dispose()
                Expect.isTrue a.IsInvalid "disposing the set disposes the loaded tensors")
        }
        test "use_rslora scales by alpha / sqrt r" {
            withTempDir (fun dir ->
                writeAdapter dir [ "use_rslora", "true" ] (qvTensors 4)
                let struct (config, set) = PeftAdapter.Load(dir, micro)
                use _ = set
                Expect.isTrue config.UseRsLora "use_rslora"

                for KeyValue(path, m) in set.Modules do
                    Expect.floatClose Accuracy.veryHigh m.Scale 8.0 $"{path}: 16 / sqrt 4")
        }
        test "rank_pattern and alpha_pattern override r and alpha for the matching modules only" {
            withTempDir (fun dir ->
                let tensors = [
                    yield! factors 0 "q_proj" 4
                    yield! factors 1 "q_proj" 4
                    yield! factors 0 "v_proj" 4
                    yield! factors 1 "v_proj" 2
                ]

                writeAdapter
                    dir
                    [
                        "lora_alpha", "8"
                        "rank_pattern", "{\n    \"model.layers.1.self_attn.v_proj\": 2\n  }"
                        "alpha_pattern", "{\n    \"q_proj\": 32\n  }"
                    ]
                    tensors

                let struct (config, set) = PeftAdapter.Load(dir, micro)
                use _ = set

                let scale layer name = set.Modules[pathOf layer name].Scale
                Expect.equal (scale 0 "q_proj") 8.0 "alpha_pattern q_proj: 32 / 4"
                Expect.equal (scale 1 "q_proj") 8.0 "alpha_pattern q_proj: 32 / 4"
                Expect.equal (scale 0 "v_proj") 2.0 "defaults: 8 / 4"
                Expect.equal (scale 1 "v_proj") 4.0 "rank_pattern: 8 / 2"
                Expect.equal (set.Modules[pathOf 1 "v_proj"].Rank) 2L "rank 2"
                expectHandValues set 1 "v_proj" 2
                Expect.equal (config.RankPattern["model.layers.1.self_attn.v_proj"]) 2 "rank_pattern kept"
                Expect.equal (config.AlphaPattern["q_proj"]) 32.0 "alpha_pattern kept")
        }
        test "\"all-linear\" targets every linear module of every layer" {
            withTempDir (fun dir ->
                let tensors = [
                    for layer in 0..1 do
                        for name in allModules do
                            yield! factors layer name 2
                ]

                writeAdapter dir [ "target_modules", "\"all-linear\""; "r", "2" ] tensors
                let struct (config, set) = PeftAdapter.Load(dir, micro)
                use _ = set
                Expect.equal set.Modules.Count 14 "7 modules × 2 layers"
                Expect.equal (List.ofSeq config.TargetModules) allModules "every module"

                for layer in 0..1 do
                    for name in allModules do
                        expectHandValues set layer name 2
                        Expect.equal (set.Modules[pathOf layer name].Scale) 8.0 "16 / 2")
        }
        test "a regex target_modules is matched against whole module paths" {
            withTempDir (fun dir ->
                let regex = "target_modules", "\".*\\\\.0\\\\.self_attn\\\\.(q|k)_proj\""
                let tensors = factors 0 "q_proj" 4 @ factors 0 "k_proj" 4
                writeAdapter dir [ regex ] tensors
                let struct (config, set) = PeftAdapter.Load(dir, micro)
                use _ = set

                Expect.equal
                    (set.Modules.Keys |> Seq.sort |> List.ofSeq)
                    [ "model.layers.0.self_attn.k_proj"; "model.layers.0.self_attn.q_proj" ]
                    "layer 0's q and k"

                expectHandValues set 0 "k_proj" 4
                Expect.equal (List.ofSeq config.TargetModules) [ "q_proj"; "k_proj" ] "modules"
                Expect.equal (List.ofSeq config.Layers) [ 0 ] "layer 0 only"
                writeAdapter dir [ regex ] (tensors @ factors 1 "q_proj" 4)
                let message = loadError dir
                Expect.stringContains message (keyOf 1 "q_proj" "A") "names the untargeted key"
                Expect.stringContains message "target_modules" "says why"
                // A bare name as a string is a regex too, and matches no whole path (PEFT: re.fullmatch).
                writeAdapter dir [ "target_modules", "\"q_proj\"" ] tensors
                Expect.stringContains (loadError dir) "target_modules \"q_proj\"" "names the field")
        }
        test "PEFT's in-memory keys with .default. are accepted" {
            withTempDir (fun dir ->
                let tensors =
                    qvTensors 4
                    |> List.map (fun t -> {
                        t with
                            Key = t.Key.Replace(".weight", ".default.weight")
                    })

                writeAdapter dir [] tensors
                let struct (_, set) = PeftAdapter.Load(dir, micro)
                use _ = set
                Expect.equal set.Modules.Count 4 "four modules"
                expectHandValues set 1 "v_proj" 4)
        }
        test "layers_to_transform (an int or a list) restricts a list of target modules" {
            withTempDir (fun dir ->
                let tensors = factors 1 "q_proj" 4 @ factors 1 "v_proj" 4

                for layers in [ "1"; "[\n    1\n  ]" ] do
                    writeAdapter dir [ "layers_to_transform", layers ] tensors
                    let struct (config, set) = PeftAdapter.Load(dir, micro)
                    use _ = set
                    Expect.equal set.Modules.Count 2 "layer 1's q and v"
                    Expect.equal (List.ofSeq config.Layers) [ 1 ] "layers"

                writeAdapter dir [ "layers_to_transform", "1" ] (tensors @ factors 0 "q_proj" 4)
                Expect.stringContains (loadError dir) (keyOf 0 "q_proj" "B") "names the key of layer 0")
        }
        test "a targeted module without tensors is simply absent, as PEFT leaves it at B = 0" {
            withTempDir (fun dir ->
                writeAdapter dir [] (factors 0 "q_proj" 4)
                let struct (_, set) = PeftAdapter.Load(dir, micro)
                use _ = set
                Expect.equal (List.ofSeq set.Modules.Keys) [ "model.layers.0.self_attn.q_proj" ] "one module")
        }
        test "loads into the requested dtype" {
            withTempDir (fun dir ->
                writeAdapter dir [] (qvTensors 4)

                let struct (_, set) = PeftAdapter.Load(dir, micro, dtype = torch.ScalarType.Float64)

                use _ = set
                let a = set.Modules[pathOf 0 "q_proj"].A
                Expect.equal a.dtype torch.ScalarType.Float64 "float64"

                Expect.sequenceEqual
                    (a.data<float>().ToArray())
                    (values 4 32 (saltOf 0 "q_proj") |> Array.map float)
                    "values")
        }
    ]

[<Tests>]
let errorTests =
    testList "PeftAdapter.Load errors" [
        let expectKeyError (tensors: Stored list) (expected: string list) =
            withTempDir (fun dir ->
                writeAdapter dir [] tensors
                let message = loadError dir
                Expect.stringContains message "adapter_model.safetensors" "names the file"

                for e in expected do
                    Expect.stringContains message e "names the offending key")

        test "a key of a layer the model does not have" {
            expectKeyError (qvTensors 4 @ factors 5 "q_proj" 4) [ keyOf 5 "q_proj" "A"; keyOf 5 "q_proj" "B" ]
        }

        test "a key naming no linear module (mlp.fc1)" {
            let fc1 = "base_model.model.model.layers.0.mlp.fc1.lora_A.weight"

            expectKeyError
                (qvTensors 4
                 @ [
                     {
                         Key = fc1
                         Shape = [ 4; 32 ]
                         Values = values 4 32 1f
                     }
                 ])
                [ fc1 ]
        }

        test "a key without PEFT's prefix or factor name" {
            let bare = "model.layers.0.self_attn.q_proj.lora_A.weight"

            let magnitude =
                "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"

            expectKeyError
                (qvTensors 4
                 @ [
                     {
                         Key = bare
                         Shape = [ 4; 32 ]
                         Values = values 4 32 1f
                     }
                     {
                         Key = magnitude
                         Shape = [ 32 ]
                         Values = values 1 32 1f
                     }
                 ])
                [ bare; magnitude ]
        }

        test "an A without its B" {
            let tensors = qvTensors 4 |> List.filter (fun t -> t.Key <> keyOf 1 "v_proj" "B")
            expectKeyError tensors [ keyOf 1 "v_proj" "A"; "no lora_B" ]
        }

        test "a B without its A" {
            let tensors = qvTensors 4 |> List.filter (fun t -> t.Key <> keyOf 0 "q_proj" "A")
            expectKeyError tensors [ keyOf 0 "q_proj" "B"; "no lora_A" ]
        }

        test "a shape that does not fit the module" {
            let tensors =
                qvTensors 4
                |> List.map (fun t ->
                    if t.Key = keyOf 0 "v_proj" "B" then
                        {
                            t with
                                Shape = [ 32; 4 ]
                                Values = values 32 4 1f
                        }
                    else
                        t)

            expectKeyError tensors [ keyOf 0 "v_proj" "B"; "[16, 4]" ]
        }

        test "a rank other than the config's r" {
            let tensors =
                (qvTensors 4
                 |> List.filter (fun t -> not (t.Key.Contains "layers.0.self_attn.q_proj")))
                @ factors 0 "q_proj" 2

            expectKeyError tensors [ keyOf 0 "q_proj" "A"; keyOf 0 "q_proj" "B"; "r = 4" ]
        }

        test "the same factor under both key forms" {
            let a = List.head (factors 0 "q_proj" 4)

            let extra = {
                a with
                    Key = (keyOf 0 "q_proj" "A").Replace(".weight", ".default.weight")
            }

            expectKeyError (qvTensors 4 @ [ extra ]) [ keyOf 0 "q_proj" "A"; extra.Key ]
        }

        let expectFieldError (fields: (string * string) list) (expected: string list) =
            withTempDir (fun dir ->
                writeAdapter dir fields (qvTensors 4)
                let message = loadError dir
                Expect.stringContains message "adapter_config.json" "names the file"

                for e in expected do
                    Expect.stringContains message e "names the field")

        test "bias other than \"none\"" { expectFieldError [ "bias", "\"all\"" ] [ "bias"; "\"all\"" ] }
        test "fan_in_fan_out true" { expectFieldError [ "fan_in_fan_out", "true" ] [ "fan_in_fan_out" ] }
        test "another peft_type" { expectFieldError [ "peft_type", "\"IA3\"" ] [ "peft_type"; "IA3" ] }
        test "use_dora true" { expectFieldError [ "use_dora", "true" ] [ "use_dora" ] }

        test "a target module the model does not have" {
            expectFieldError [ "target_modules", "[\"q_proj\", \"fc1\"]" ] [ "target_modules"; "\"fc1\"" ]
        }

        test "r that is not an integer" { expectFieldError [ "r", "\"four\"" ] [ "r must be an integer" ] }

        test "a layer the model does not have in layers_to_transform" {
            expectFieldError [ "layers_to_transform", "[0, 2]" ] [ "layers_to_transform"; "2" ]
        }

        test "no adapter_config.json, no weights, no directory" {
            withTempDir (fun dir ->
                File.WriteAllBytes(Path.Combine(dir, "adapter_model.safetensors"), safetensorsImage (qvTensors 4))
                Expect.stringContains (loadError dir) "adapter_config.json" "config"
                File.Delete(Path.Combine(dir, "adapter_model.safetensors"))
                File.WriteAllText(Path.Combine(dir, "adapter_config.json"), peftConfig [])
                Expect.stringContains (loadError dir) "adapter_model.safetensors" "weights"
                Expect.stringContains (loadError (Path.Combine(dir, "nothing"))) "nothing" "directory")
        }
    ]

[<Tests>]
let saveTests =
    testList "PeftAdapter.Save" [
        test "writes PEFT's files: keys, [r, in] and [out, r] shapes, F32 data, format pt, config fields" {
            withTempDir (fun dir ->
                use set = handSet [ 0, "q_proj", 4, 4.0; 1, "down_proj", 4, 4.0 ]
                PeftAdapter.Save(dir, LoraConfig(Rank = 4, Alpha = 16.0), set, "Qwen/Qwen2.5-0.5B")

                Expect.sequenceEqual
                    (dirEntries dir)
                    [| "adapter_config.json"; "adapter_model.safetensors" |]
                    "the two files and nothing else"

                let (header, data) =
                    readSafetensors (Path.Combine(dir, "adapter_model.safetensors"))

                use _ = header
                let root = header.RootElement

                Expect.equal
                    (root.GetProperty("__metadata__").GetRawText())
                    "{\"format\":\"pt\"}"
                    "metadata {\"format\":\"pt\"}"

                let expected = [
                    keyOf 0 "q_proj" "A", [ 4; 32 ], values 4 32 (saltOf 0 "q_proj")
                    keyOf 0 "q_proj" "B", [ 32; 4 ], values 32 4 (-(saltOf 0 "q_proj"))
                    keyOf 1 "down_proj" "A", [ 4; 48 ], values 4 48 (saltOf 1 "down_proj")
                    keyOf 1 "down_proj" "B", [ 32; 4 ], values 32 4 (-(saltOf 1 "down_proj"))
                ]

                Expect.equal
                    (root.EnumerateObject()
                     |> Seq.map (fun p -> p.Name)
                     |> Seq.filter ((<>) "__metadata__")
                     |> Seq.sort
                     |> List.ofSeq)
                    (expected |> List.map (fun (k, _, _) -> k) |> List.sort)
                    "PEFT's keys"

                for (key, shape, vs) in expected do
                    let entry = root.GetProperty key
                    Expect.equal (entry.GetProperty("dtype").GetString()) "F32" $"{key} dtype"
                    Expect.equal (shapeIn entry) shape $"{key} shape"
                    let (b, e) = offsetsIn entry
                    Expect.sequenceEqual (f32Values (data b e)) vs $"{key} data"

                use config =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))

                let c = config.RootElement
                let str (name: string) = c.GetProperty(name).GetString()
                Expect.equal (str "peft_type") "LORA" "peft_type"
                Expect.equal (str "task_type") "CAUSAL_LM" "task_type"
                Expect.equal (str "bias") "none" "bias"
                Expect.equal (str "base_model_name_or_path") "Qwen/Qwen2.5-0.5B" "base model"
                Expect.equal (c.GetProperty("r").GetRawText()) "4" "r, an integer"
                Expect.equal (c.GetProperty("lora_alpha").GetRawText()) "16" "lora_alpha"
                Expect.equal (c.GetProperty("lora_dropout").GetDouble()) 0.0 "lora_dropout"
                Expect.isFalse (c.GetProperty("fan_in_fan_out").GetBoolean()) "fan_in_fan_out"
                Expect.isFalse (c.GetProperty("use_rslora").GetBoolean()) "use_rslora"

                Expect.equal
                    [ for m in c.GetProperty("target_modules").EnumerateArray() -> m.GetString() ]
                    [ "down_proj"; "q_proj" ]
                    "sorted names present"

                Expect.equal (c.GetProperty("rank_pattern").GetRawText()) "{}" "no rank overrides"
                Expect.equal (c.GetProperty("alpha_pattern").GetRawText()) "{}" "no alpha overrides"
                Expect.equal (c.GetProperty("layers_to_transform").ValueKind) JsonValueKind.Null "every layer")
        }
        test "modules that differ from r and alpha get rank_pattern and alpha_pattern entries, which load back" {
            withTempDir (fun dir ->
                // Defaults r 4, alpha 8 (scale 2). v_proj: r 2 and scale 4, i.e. alpha 8; layer 1 q_proj: scale 3,
                // i.e. alpha 12.
                use set = handSet [ 0, "q_proj", 4, 2.0; 0, "v_proj", 2, 4.0; 1, "q_proj", 4, 3.0 ]
                PeftAdapter.Save(dir, LoraConfig(Rank = 4, Alpha = 8.0), set)

                use config =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))

                let c = config.RootElement

                let pattern (name: string) = [
                    for p in c.GetProperty(name).EnumerateObject() -> p.Name, p.Value.GetDouble()
                ]

                Expect.equal (pattern "rank_pattern") [ "model.layers.0.self_attn.v_proj", 2.0 ] "rank_pattern"
                Expect.equal (pattern "alpha_pattern") [ "model.layers.1.self_attn.q_proj", 12.0 ] "alpha_pattern"

                Expect.equal
                    [ for m in c.GetProperty("target_modules").EnumerateArray() -> m.GetString() ]
                    [ "q_proj"; "v_proj" ]
                    "target_modules"

                Expect.equal (c.GetProperty("base_model_name_or_path").ValueKind) JsonValueKind.Null "no base named"
                let struct (_, loaded) = PeftAdapter.Load(dir, micro)
                use _ = loaded

                for (layer, name, scale) in [ 0, "q_proj", 2.0; 0, "v_proj", 4.0; 1, "q_proj", 3.0 ] do
                    Expect.floatClose
                        Accuracy.veryHigh
                        (loaded.Modules[pathOf layer name].Scale)
                        scale
                        $"{name} {layer}"

                expectHandValues loaded 0 "v_proj" 2)
        }
        test "rsLoRA configs and a layer restriction are written as such" {
            withTempDir (fun dir ->
                use set = handSet [ 1, "k_proj", 4, 4.0 ]

                PeftAdapter.Save(
                    dir,
                    LoraConfig(Rank = 4, Alpha = 8.0, UseRsLora = true, Layers = ResizeArray [ 1 ]),
                    set
                )

                use config =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))

                let c = config.RootElement
                Expect.isTrue (c.GetProperty("use_rslora").GetBoolean()) "use_rslora"

                Expect.equal
                    [
                        for l in c.GetProperty("layers_to_transform").EnumerateArray() -> l.GetInt32()
                    ]
                    [ 1 ]
                    "layer 1"

                Expect.equal (c.GetProperty("alpha_pattern").GetRawText()) "{}" "8 / sqrt 4 = 4: the default alpha")
        }
        test "stores bf16 when asked: the upper half of each float32" {
            withTempDir (fun dir ->
                // Multiples of 1/8 in [-1, 1) are exact in bf16.
                let exact n =
                    Array.init n (fun k -> float32 (k % 16 - 8) * 0.125f)

                let a = torch.tensor(exact (2 * 32)).reshape(2L, 32L)
                let b = torch.tensor(exact (32 * 2)).reshape(32L, 2L)

                use set =
                    new LoraSet(readOnlyDict [ pathOf 0 "o_proj", LoraModule.LowRank(a, b, 1.0) ], true)

                PeftAdapter.Save(dir, LoraConfig(Rank = 2, Alpha = 2.0), set, dtype = torch.ScalarType.BFloat16)

                let (header, data) =
                    readSafetensors (Path.Combine(dir, "adapter_model.safetensors"))

                use _ = header
                let entry = header.RootElement.GetProperty(keyOf 0 "o_proj" "A")
                Expect.equal (entry.GetProperty("dtype").GetString()) "BF16" "dtype"
                let (b, e) = offsetsIn entry

                let expected =
                    exact 64
                    |> Array.collect (fun x ->
                        BitConverter.GetBytes(uint16 (BitConverter.SingleToUInt32Bits x >>> 16)))

                Expect.sequenceEqual (data b e) expected "bf16 bytes")
        }
        test "Save then Load gives back the same factors and scales" {
            withTempDir (fun dir ->
                let targets = [
                    for layer in 0..1 do
                        for name in allModules -> layer, name
                ]

                use set = randomLora micro 5L 3L 0.5 0.7 targets
                PeftAdapter.Save(dir, LoraConfig(Rank = 3, Alpha = 2.1), set)
                let struct (config, loaded) = PeftAdapter.Load(dir, micro)
                use _ = loaded
                Expect.equal (List.ofSeq config.TargetModules) allModules "all modules"

                for KeyValue(path, m) in set.Modules do
                    let l = loaded.Modules[path]
                    Expect.sequenceEqual (floats l.A) (floats m.A) $"{path} A"
                    Expect.sequenceEqual (floats l.B) (floats m.B) $"{path} B"
                    Expect.floatClose Accuracy.veryHigh l.Scale 0.7 $"{path} scale")
        }
        test "overwrites an adapter, leaving only the two files" {
            withTempDir (fun dir ->
                use first = handSet [ 0, "q_proj", 4, 4.0 ]
                PeftAdapter.Save(dir, LoraConfig(Rank = 4, Alpha = 16.0), first)
                use second = handSet [ 1, "up_proj", 2, 8.0 ]
                PeftAdapter.Save(dir, LoraConfig(Rank = 2, Alpha = 16.0), second)

                Expect.sequenceEqual
                    (dirEntries dir)
                    [| "adapter_config.json"; "adapter_model.safetensors" |]
                    "no temporary files"

                let struct (_, loaded) = PeftAdapter.Load(dir, micro)
                use _ = loaded
                Expect.equal (List.ofSeq loaded.Modules.Keys) [ pathOf 1 "up_proj" ] "the second adapter"
                expectHandValues loaded 1 "up_proj" 2)
        }
        test "refuses dense and batched sets, suggesting SVD truncation for dense ones" {
            withTempDir (fun dir ->
                let path = pathOf 0 "q_proj"

                use dense =
                    new LoraSet(readOnlyDict [ path, LoraModule.Dense(torch.zeros (32L, 32L)) ], true)

                let message =
                    errorMessage<LlgbmException>(fun () -> PeftAdapter.Save(dir, LoraConfig(), dense))

                Expect.stringContains message path "names the module"
                Expect.stringContains message "SVD" "suggests SVD truncation"

                use batched =
                    new LoraSet(
                        readOnlyDict [
                            path, LoraModule.LowRank(torch.zeros (2L, 4L, 32L), torch.zeros (2L, 32L, 4L), 1.0)
                        ],
                        true
                    )

                let message =
                    errorMessage<LlgbmException>(fun () -> PeftAdapter.Save(dir, LoraConfig(), batched))

                Expect.stringContains message "per-example" "says why"
                Expect.isEmpty (dirEntries dir) "nothing written")
        }
    ]
