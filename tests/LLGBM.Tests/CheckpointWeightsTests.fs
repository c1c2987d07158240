module LLGBM.Tests.CheckpointWeightsTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open LLGBM.Checkpoints
open LLGBM.Tests.SafetensorsTests.Kit

let private pairs (tensors: (string * torch.Tensor) list) =
    tensors |> List.map (fun (n, t) -> KeyValuePair(n, t))

/// A small Qwen2-like state dict: 4 tensors of 24, 16, 8 and 40 bytes, in several dtypes.
let private sample () = [
    "model.embed_tokens.weight", (torch.arange (6L, dtype = torch.ScalarType.Float32)).reshape(2L, 3L)
    "model.layers.0.self_attn.q_proj.bias",
    (torch.arange (8L, dtype = torch.ScalarType.Float32)).to_type torch.ScalarType.BFloat16
    "model.layers.0.input_layernorm.weight", torch.tensor [| 7L |]
    "model.norm.weight", torch.arange (10L, dtype = torch.ScalarType.Float32)
]

let private disposeAll (tensors: (string * torch.Tensor) list) =
    for _, t in tensors do
        t.Dispose()

/// Name -> (dtype, shape, bytes) of every tensor the checkpoint holds.
let private contents (reader: CheckpointReader) =
    reader.Names
    |> Seq.map (fun name ->
        use t = reader.Read name
        name, (t.dtype, t.shape, bytesOf t))
    |> Map.ofSeq

let private expectedContents (tensors: (string * torch.Tensor) list) =
    tensors
    |> List.map (fun (n, t) -> n, (t.dtype, t.shape, bytesOf t))
    |> Map.ofList

let private checkpointError (action: unit -> unit) =
    try
        action ()
        failtest "expected a CheckpointFormatException"
        Unchecked.defaultof<CheckpointFormatException>
    with :? CheckpointFormatException as e ->
        e

let private expectOpenRule rule (dir: string) =
    let e = checkpointError (fun () -> (CheckpointWeights.Open dir).Dispose())
    Expect.equal e.Rule rule $"rule; message: {e.Message}"
    Expect.equal e.Directory dir "Directory property"
    Expect.stringContains e.Message dir "the message names the directory"
    e

let private writeIndex dir (text: string) =
    File.WriteAllText(Path.Combine(dir, CheckpointWeights.IndexFileName), text)

let private saveShard dir name (tensors: (string * torch.Tensor) list) =
    SafetensorsWriter.Save(Path.Combine(dir, name), pairs tensors)

/// Two shards: s1 holds a, b; s2 holds c. The index is left to each test.
let private twoShards dir =
    use a = torch.tensor [| 1.0f |]
    use b = torch.tensor [| 2.0f |]
    use c = torch.tensor [| 3.0f |]
    saveShard dir "s1.safetensors" [ "a", a; "b", b ]
    saveShard dir "s2.safetensors" [ "c", c ]

let private goodIndex =
    """{"metadata": {"total_size": 12}, "weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}}"""

let private indexCase name rule (index: string) (check: CheckpointFormatException -> unit) =
    test name {
        withTempDir (fun dir ->
            twoShards dir
            writeIndex dir index
            expectOpenRule rule dir |> check)
    }

let private noCheck (_: CheckpointFormatException) = ()

let private mentions (text: string) (e: CheckpointFormatException) =
    Expect.stringContains e.Message text "message detail"

[<Tests>]
let openTests =
    testList "CheckpointWeights.Open" [
        test "a hand-written index over two shards" {
            withTempDir (fun dir ->
                twoShards dir
                writeIndex dir goodIndex
                use reader = CheckpointWeights.Open dir
                Expect.isTrue reader.IsSharded "sharded"
                Expect.equal (List.ofSeq reader.Names) [ "a"; "b"; "c" ] "names"
                Expect.equal reader.IndexTotalSize (Nullable 12L) "total size"
                Expect.equal (reader.Entry "c").DType SafetensorsDType.F32 "entry dtype"
                Expect.equal (List.ofSeq (reader.Entry "c").Shape) [ 1L ] "entry shape"
                Expect.equal (reader.FileOf "c") (Path.Combine(dir, "s2.safetensors")) "file of c"
                use c = reader.Read "c"
                Expect.equal (c.data<float32>().ToArray()) [| 3.0f |] "value")
        }

        test "a float total_size, as some published indexes have, is accepted" {
            withTempDir (fun dir ->
                twoShards dir
                writeIndex dir (goodIndex.Replace("12}", "12.0}"))
                use reader = CheckpointWeights.Open dir
                Expect.equal reader.IndexTotalSize (Nullable 12L) "total size")
        }

        test "an index with a UTF-8 byte order mark is accepted" {
            withTempDir (fun dir ->
                twoShards dir

                File.WriteAllText(
                    Path.Combine(dir, CheckpointWeights.IndexFileName),
                    goodIndex,
                    Text.UTF8Encoding(true)
                )

                use reader = CheckpointWeights.Open dir
                Expect.equal reader.Names.Count 3 "names")
        }

        test "no directory" {
            withTempDir (fun dir ->
                let missing = Path.Combine(dir, "nope")
                expectOpenRule CheckpointRule.NoDirectory missing |> ignore)
        }

        test "no weights file names what was looked for" {
            withTempDir (fun dir ->
                File.WriteAllText(Path.Combine(dir, "pytorch_model.bin"), "")
                let e = expectOpenRule CheckpointRule.NoWeights dir
                Expect.stringContains e.Message "model.safetensors" "single file name"
                Expect.stringContains e.Message "model.safetensors.index.json" "index name"
                Expect.stringContains e.Message "pytorch_model.bin" "what was found instead")
        }

        indexCase "index not JSON" CheckpointRule.IndexNotJson "{\"weight_map\": {" (mentions "index.json")
        indexCase "index a JSON array" CheckpointRule.IndexSchema "[]" noCheck
        indexCase "index without weight_map" CheckpointRule.IndexSchema "{\"metadata\": {}}" (mentions "weight_map")
        indexCase "weight_map value a number" CheckpointRule.IndexSchema "{\"weight_map\": {\"a\": 1}}" (mentions "'a'")
        indexCase "metadata an array" CheckpointRule.IndexSchema "{\"metadata\": [], \"weight_map\": {}}" noCheck
        indexCase
            "negative total_size"
            CheckpointRule.IndexSchema
            "{\"metadata\": {\"total_size\": -1}, \"weight_map\": {}}"
            noCheck
        indexCase
            "shard file missing"
            CheckpointRule.ShardMissing
            (goodIndex.Replace("\"c\": \"s2.safetensors\"", "\"c\": \"s3.safetensors\""))
            (mentions "s3.safetensors")
        indexCase
            "weight_map tensor absent from its shard"
            CheckpointRule.TensorMissingFromShard
            (goodIndex.Replace("}}", ", \"d\": \"s2.safetensors\"}}"))
            (mentions "'d'")
        indexCase
            "weight_map tensor assigned to the wrong shard"
            CheckpointRule.TensorMissingFromShard
            "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\", \"c\": \"s1.safetensors\"}}"
            (mentions "'b' to 's2.safetensors', whose header does not hold it; it is in 's1.safetensors' instead")
        indexCase
            "shard tensor not in the weight_map"
            CheckpointRule.TensorNotInIndex
            (goodIndex.Replace("\"b\": \"s1.safetensors\", ", ""))
            (mentions "'b'")
        indexCase
            "tensor listed twice in the weight_map"
            CheckpointRule.TensorInTwoShards
            (goodIndex.Replace("}}", ", \"a\": \"s2.safetensors\"}}"))
            (mentions "'a'")
        indexCase
            "shard path with .."
            CheckpointRule.ShardPathEscapes
            (goodIndex.Replace("\"c\": \"s2.safetensors\"", "\"c\": \"../s2.safetensors\""))
            (mentions "../s2.safetensors")
        indexCase
            "absolute shard path"
            CheckpointRule.ShardPathEscapes
            (goodIndex.Replace("\"c\": \"s2.safetensors\"", "\"c\": \"/etc/passwd\""))
            noCheck
        indexCase
            "empty shard path"
            CheckpointRule.ShardPathEscapes
            (goodIndex.Replace("\"c\": \"s2.safetensors\"", "\"c\": \"\""))
            noCheck

        test "a tensor in two shards" {
            withTempDir (fun dir ->
                twoShards dir
                use again = torch.tensor [| 9.0f |]
                saveShard dir "s2.safetensors" [ "c", again; "a", again |> fun t -> t.clone () ]
                writeIndex dir goodIndex
                let e = expectOpenRule CheckpointRule.TensorInTwoShards dir
                Expect.stringContains e.Message "'a'" "names the tensor")
        }

        test "a corrupt shard raises the safetensors error naming the shard" {
            withTempDir (fun dir ->
                twoShards dir
                writeIndex dir goodIndex
                let shard = Path.Combine(dir, "s2.safetensors")
                let bytes = File.ReadAllBytes shard
                File.WriteAllBytes(shard, bytes[.. bytes.Length - 2])

                let e = formatError (fun () -> (CheckpointWeights.Open dir).Dispose())
                Expect.equal e.Rule SafetensorsRule.DataTruncated "rule"
                Expect.equal e.File shard "names the shard")
        }

        test "an unknown tensor name lists close names" {
            withTempDir (fun dir ->
                twoShards dir
                writeIndex dir goodIndex
                use reader = CheckpointWeights.Open dir

                let e =
                    Expect.throwsC (fun () -> reader.Read "cc" |> ignore) (fun e -> e :?> TensorNotFoundException)

                Expect.equal e.Suggestions[0] "c" "closest first"
                Expect.stringContains e.Message dir "names the directory")
        }
    ]

[<Tests>]
let saveTests =
    testList "CheckpointWeights.Save" [
        test "everything fits: one model.safetensors" {
            withTempDir (fun dir ->
                let tensors = sample ()
                CheckpointWeights.Save(dir, pairs tensors)
                Expect.equal (dirEntries dir) [| "model.safetensors" |] "one file"
                use reader = CheckpointWeights.Open dir
                Expect.isFalse reader.IsSharded "single"
                Expect.equal (contents reader) (expectedContents tensors) "tensors"
                disposeAll tensors)
        }

        test "a small shard size gives shards and an index that read back identically" {
            withTempDir (fun dir ->
                let tensors = sample ()
                let single = Path.Combine(dir, "single")
                let sharded = Path.Combine(dir, "sharded")
                CheckpointWeights.Save(single, pairs tensors)
                // 24, 16, 8, 40 bytes with at most 40 per shard: [24, 16], [8], [40].
                CheckpointWeights.Save(sharded, pairs tensors, 40L)

                Expect.equal
                    (dirEntries sharded)
                    [|
                        "model-00001-of-00003.safetensors"
                        "model-00002-of-00003.safetensors"
                        "model-00003-of-00003.safetensors"
                        "model.safetensors.index.json"
                    |]
                    "files"

                use index =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(sharded, CheckpointWeights.IndexFileName)))

                let root = index.RootElement
                Expect.equal (root.GetProperty("metadata").GetProperty("total_size").GetInt64()) 88L "total_size"

                let weightMap =
                    root.GetProperty("weight_map").EnumerateObject()
                    |> Seq.map (fun p -> p.Name, string (p.Value.GetString()))
                    |> List.ofSeq

                Expect.equal
                    weightMap
                    [
                        "model.embed_tokens.weight", "model-00001-of-00003.safetensors"
                        "model.layers.0.input_layernorm.weight", "model-00002-of-00003.safetensors"
                        "model.layers.0.self_attn.q_proj.bias", "model-00001-of-00003.safetensors"
                        "model.norm.weight", "model-00003-of-00003.safetensors"
                    ]
                    "weight_map, sorted by name"

                use fromSingle = CheckpointWeights.Open single
                use fromShards = CheckpointWeights.Open sharded
                Expect.isTrue fromShards.IsSharded "sharded"
                Expect.equal fromShards.IndexTotalSize (Nullable 88L) "total size"
                Expect.equal (contents fromShards) (contents fromSingle) "same tensors"
                Expect.equal (contents fromShards) (expectedContents tensors) "the saved tensors"
                disposeAll tensors)
        }

        test "a tensor larger than the shard size gets a shard of its own" {
            withTempDir (fun dir ->
                let tensors = sample ()
                CheckpointWeights.Save(dir, pairs tensors, 10L)
                use reader = CheckpointWeights.Open dir
                Expect.equal reader.Files.Count 4 "one shard per tensor"
                Expect.equal (contents reader) (expectedContents tensors) "tensors"
                disposeAll tensors)
        }

        test "switching layouts removes the stale files of the other layout" {
            withTempDir (fun dir ->
                let tensors = sample ()
                File.WriteAllText(Path.Combine(dir, "config.json"), "{}")
                CheckpointWeights.Save(dir, pairs tensors, 10L)
                Expect.equal (dirEntries dir).Length 6 "4 shards, index, config"
                CheckpointWeights.Save(dir, pairs tensors, 40L)

                Expect.equal
                    (dirEntries dir)
                    [|
                        "config.json"
                        "model-00001-of-00003.safetensors"
                        "model-00002-of-00003.safetensors"
                        "model-00003-of-00003.safetensors"
                        "model.safetensors.index.json"
                    |]
                    "the 4-shard files are gone"

                CheckpointWeights.Save(dir, pairs tensors)
                Expect.equal (dirEntries dir) [| "config.json"; "model.safetensors" |] "index and shards gone"
                CheckpointWeights.Save(dir, pairs tensors, 40L)
                Expect.isFalse (File.Exists(Path.Combine(dir, "model.safetensors"))) "single file gone"
                use reader = CheckpointWeights.Open dir
                Expect.equal (contents reader) (expectedContents tensors) "tensors"
                disposeAll tensors)
        }

        test "shards an old index listed are removed, other files are kept" {
            withTempDir (fun dir ->
                twoShards dir
                writeIndex dir goodIndex
                File.WriteAllText(Path.Combine(dir, "notes.safetensors.txt"), "keep")
                use t = torch.tensor [| 1.0f |]
                CheckpointWeights.Save(dir, pairs [ "t", t ])
                Expect.equal (dirEntries dir) [| "model.safetensors"; "notes.safetensors.txt" |] "files")
        }

        test "a failing enumeration changes nothing" {
            withTempDir (fun dir ->
                let tensors = sample ()
                CheckpointWeights.Save(dir, pairs tensors, 40L)

                let before =
                    dirEntries dir
                    |> Array.map (fun n -> n, File.ReadAllBytes(Path.Combine(dir, n)))

                let failing =
                    seq {
                        KeyValuePair("x", snd tensors[0])
                        failwith "boom"
                    }

                Expect.throws (fun () -> CheckpointWeights.Save(dir, failing)) "the error surfaces"

                let after =
                    dirEntries dir
                    |> Array.map (fun n -> n, File.ReadAllBytes(Path.Combine(dir, n)))

                Expect.equal after before "untouched"
                disposeAll tensors)
        }

        test "creates the directory and rejects a non-positive shard size" {
            withTempDir (fun dir ->
                let target = Path.Combine(dir, "a", "b")
                use t = torch.tensor [| 1.0f |]
                CheckpointWeights.Save(target, pairs [ "t", t ])
                Expect.isTrue (File.Exists(Path.Combine(target, "model.safetensors"))) "written"

                Expect.throwsT<ArgumentOutOfRangeException>
                    (fun () -> CheckpointWeights.Save(target, pairs [ "t", t ], 0L))
                    "zero")
        }
    ]
