module LLGBM.Tests.SafetensorsTests

open System
open System.Buffers.Binary
open System.IO
open System.Text
open System.Text.Json
open Expecto
open FsCheck
open TorchSharp
open LLGBM
open LLGBM.Checkpoints

/// Helpers shared with the checkpoint tests.
module Kit =
    /// Runs f in a fresh temporary directory that is removed afterwards.
    let withTempDir (f: string -> unit) =
        let dir =
            Path.Combine(Path.GetTempPath(), "llgbm-st-" + Guid.NewGuid().ToString("N"))

        Directory.CreateDirectory dir |> ignore

        try
            f dir
        finally
            Directory.Delete(dir, true)

    let u64le (n: uint64) =
        let b = Array.zeroCreate<byte> 8
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(), n)
        b

    /// A file image built by hand: 8-byte little-endian N, the header bytes, the data bytes.
    let image (header: byte[]) (data: byte[]) =
        Array.concat [ u64le (uint64 header.Length); header; data ]

    let imageOf (header: string) (data: byte[]) =
        image (Encoding.UTF8.GetBytes header) data

    let writeFile dir name (bytes: byte[]) =
        let path = Path.Combine(dir, name)
        File.WriteAllBytes(path, bytes)
        path

    /// One header entry in the format's JSON.
    let entry name dtype (shape: int64 list) (b: int64) (e: int64) =
        let dims = shape |> List.map string |> String.concat ","
        sprintf "\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%d,%d]}" name dtype dims b e

    let header (entries: string list) = "{" + String.concat "," entries + "}"

    let bytesOf (t: torch.Tensor) = t.bytes.ToArray()

    let f32 (values: float32[]) = torch.tensor values

    /// The safetensors error the action raises; fails the test if it raises none or another.
    let formatError (action: unit -> unit) =
        try
            action ()
            failtest "expected a SafetensorsFormatException"
            Unchecked.defaultof<SafetensorsFormatException>
        with :? SafetensorsFormatException as e ->
            e

    let expectRule rule (path: string) =
        let e = formatError (fun () -> SafetensorsHeader.Read path |> ignore)
        Expect.equal e.Rule rule $"rule for {Path.GetFileName path}; message: {e.Message}"
        Expect.equal e.File path "File property"
        Expect.stringContains e.Message path "the message names the file"
        e

    let dirEntries dir =
        Directory.GetFileSystemEntries dir
        |> Array.map (Path.GetFileName >> nonNull)
        |> Array.sort

open Kit

let private f32Pair = entry "a" "F32" [ 2L ] 0L 8L

/// 1.0f and -2.0f, little-endian.
let private f32PairBytes = [| 0x00uy; 0x00uy; 0x80uy; 0x3Fuy; 0x00uy; 0x00uy; 0x00uy; 0xC0uy |]

let private ruleCase name (rule: SafetensorsRule) (bytes: byte[]) check =
    test name {
        withTempDir (fun dir ->
            let path = writeFile dir "bad.safetensors" bytes
            let e = expectRule rule path
            check e)
    }

let private noCheck (_: SafetensorsFormatException) = ()

let private mentions (text: string) (e: SafetensorsFormatException) =
    Expect.stringContains e.Message text "message detail"

[<Tests>]
let readHeader =
    testList "Safetensors.ReadHeader" [
        ruleCase "a 3-byte file" SafetensorsRule.FileTooSmall [| 1uy; 2uy; 3uy |] (mentions "3 bytes")
        ruleCase "an empty file" SafetensorsRule.FileTooSmall [||] noCheck
        ruleCase
            "N = 2^40"
            SafetensorsRule.HeaderTooLarge
            (Array.append (u64le (1UL <<< 40)) (Encoding.ASCII.GetBytes "{}      "))
            noCheck
        ruleCase
            "N = 2^64 - 1"
            SafetensorsRule.HeaderTooLarge
            (Array.append (u64le UInt64.MaxValue) (Array.zeroCreate 8))
            noCheck
        ruleCase
            "N one over the 100,000,000 cap"
            SafetensorsRule.HeaderTooLarge
            (Array.append (u64le 100_000_001UL) (Array.zeroCreate 8))
            noCheck
        ruleCase
            "N at the cap but bigger than the file"
            SafetensorsRule.HeaderBeyondFile
            (Array.append (u64le 100_000_000UL) (Array.zeroCreate 8))
            noCheck
        ruleCase
            "N bigger than the file"
            SafetensorsRule.HeaderBeyondFile
            (Array.append (u64le 100UL) (Encoding.ASCII.GetBytes "{}"))
            (mentions "only 2 bytes")
        ruleCase
            "header not UTF-8"
            SafetensorsRule.HeaderNotUtf8
            (image (Array.concat [ "{\"__metadata__\":{\"k\":\""B; [| 0xFFuy |]; "\"}}"B ]) [||])
            (mentions "0xFF")
        ruleCase
            "header a truncated UTF-8 sequence"
            SafetensorsRule.HeaderNotUtf8
            (image (Array.append "{\"a\":\""B [| 0xE2uy; 0x82uy |]) [||])
            noCheck
        ruleCase "header not JSON" SafetensorsRule.HeaderNotJson (imageOf "{\"a\": " [||]) noCheck
        ruleCase "header two JSON values" SafetensorsRule.HeaderNotJson (imageOf "{} {}" [||]) noCheck
        ruleCase "header empty" SafetensorsRule.HeaderNotJson (imageOf "" [||]) noCheck
        ruleCase "header a JSON array" SafetensorsRule.HeaderSchema (imageOf "[]" [||]) (mentions "an array")
        ruleCase
            "a tensor entry that is a string"
            SafetensorsRule.HeaderSchema
            (imageOf "{\"a\":\"F32\"}" [||])
            (mentions "'a'")
        ruleCase
            "unknown dtype F7"
            SafetensorsRule.UnknownDType
            (imageOf (header [ entry "a" "F7" [ 2L ] 0L 8L ]) f32PairBytes)
            (mentions "F7")
        ruleCase
            "dtype in lower case"
            SafetensorsRule.UnknownDType
            (imageOf (header [ entry "a" "f32" [ 2L ] 0L 8L ]) f32PairBytes)
            noCheck
        ruleCase
            "dtype a number"
            SafetensorsRule.HeaderSchema
            (imageOf "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}" f32PairBytes)
            (mentions "dtype")
        ruleCase
            "no shape"
            SafetensorsRule.HeaderSchema
            (imageOf "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}" f32PairBytes)
            (mentions "shape")
        ruleCase
            "no data_offsets"
            SafetensorsRule.HeaderSchema
            (imageOf "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}" f32PairBytes)
            (mentions "data_offsets")
        ruleCase
            "negative dimension"
            SafetensorsRule.HeaderSchema
            (imageOf (header [ entry "a" "F32" [ -2L ] 0L 8L ]) f32PairBytes)
            (mentions "-2")
        ruleCase
            "fractional dimension"
            SafetensorsRule.HeaderSchema
            (imageOf "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}" f32PairBytes)
            noCheck
        ruleCase
            "dimension beyond Int64"
            SafetensorsRule.HeaderSchema
            (imageOf "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,8]}}" [||])
            noCheck
        ruleCase
            "three data_offsets"
            SafetensorsRule.HeaderSchema
            (imageOf "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}" f32PairBytes)
            noCheck
        ruleCase
            "metadata value a number"
            SafetensorsRule.MetadataNotStrings
            (imageOf ("{\"__metadata__\":{\"format\":\"pt\",\"step\":3}," + f32Pair + "}") f32PairBytes)
            (mentions "step")
        ruleCase
            "metadata an array"
            SafetensorsRule.MetadataNotStrings
            (imageOf "{\"__metadata__\":[\"pt\"]}" [||])
            noCheck
        ruleCase
            "duplicate tensor names"
            SafetensorsRule.DuplicateName
            (imageOf (header [ entry "a" "F32" [ 1L ] 0L 4L; entry "a" "F32" [ 1L ] 4L 8L ]) f32PairBytes)
            (mentions "'a'")
        ruleCase
            "duplicate names spelt with escapes"
            SafetensorsRule.DuplicateName
            (imageOf (header [ entry "a" "F32" [ 1L ] 0L 4L; entry "\\u0061" "F32" [ 1L ] 4L 8L ]) f32PairBytes)
            noCheck
        ruleCase
            "duplicate field in a tensor entry"
            SafetensorsRule.DuplicateName
            (imageOf "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}" f32PairBytes)
            (mentions "dtype")
        ruleCase
            "duplicate metadata key"
            SafetensorsRule.DuplicateName
            (imageOf "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}" [||])
            noCheck
        ruleCase
            "end before begin"
            SafetensorsRule.OffsetsReversed
            (imageOf (header [ entry "a" "F32" [ 0L ] 8L 4L ]) f32PairBytes)
            noCheck
        ruleCase
            "gap between tensors"
            SafetensorsRule.OffsetsGap
            (imageOf (header [ entry "a" "F32" [ 1L ] 0L 4L; entry "b" "F32" [ 1L ] 8L 12L ]) (Array.zeroCreate 12))
            (mentions "'b'")
        ruleCase
            "overlapping tensors"
            SafetensorsRule.OffsetsOverlap
            (imageOf (header [ entry "a" "F32" [ 2L ] 0L 8L; entry "b" "F32" [ 2L ] 4L 12L ]) (Array.zeroCreate 12))
            (mentions "'a'")
        ruleCase
            "two tensors over the same bytes"
            SafetensorsRule.OffsetsOverlap
            (imageOf (header [ entry "a" "F32" [ 2L ] 0L 8L; entry "b" "F32" [ 2L ] 0L 8L ]) f32PairBytes)
            noCheck
        ruleCase
            "data not starting at 0"
            SafetensorsRule.OffsetsNotFromZero
            (imageOf (header [ entry "a" "F32" [ 1L ] 4L 8L ]) f32PairBytes)
            (mentions "expected 0")
        ruleCase
            "size mismatch: F32 [2, 3] in 20 bytes"
            SafetensorsRule.ByteSizeMismatch
            (imageOf (header [ entry "a" "F32" [ 2L; 3L ] 0L 20L ]) (Array.zeroCreate 20))
            (mentions "24 bytes")
        ruleCase
            "numel × size overflows Int64"
            SafetensorsRule.ByteSizeOverflow
            (imageOf (header [ entry "a" "F32" [ 1L <<< 62; 1L ] 0L 0L ]) [||])
            (mentions "'a'")
        ruleCase
            "numel overflows Int64"
            SafetensorsRule.ByteSizeOverflow
            (imageOf (header [ entry "a" "U8" [ 1L <<< 32; 1L <<< 32 ] 0L 0L ]) [||])
            noCheck
        ruleCase "truncated data" SafetensorsRule.DataTruncated (imageOf (header [ f32Pair ]) f32PairBytes[..3]) noCheck
        ruleCase
            "trailing bytes"
            SafetensorsRule.TrailingBytes
            (imageOf (header [ f32Pair ]) (Array.append f32PairBytes [| 0uy |]))
            (mentions "1 trailing byte")
        ruleCase "no tensors but data bytes" SafetensorsRule.TrailingBytes (imageOf "{}" [| 0uy |]) noCheck
        ruleCase
            "the first broken rule is named: unknown dtype before gap and truncation"
            SafetensorsRule.UnknownDType
            (imageOf (header [ entry "a" "F7" [ 1L ] 0L 4L; entry "b" "F32" [ 1L ] 8L 12L ]) [||])
            noCheck
        ruleCase
            "the first broken rule is named: not JSON even with invalid schema before the error"
            SafetensorsRule.HeaderNotJson
            (imageOf "{\"a\": 3, \"b\": " [||])
            noCheck

        test "leading whitespace and trailing padding are accepted" {
            withTempDir (fun dir ->
                let path =
                    writeFile dir "ws.safetensors" (imageOf (" \n\t " + header [ f32Pair ] + "   ") f32PairBytes)

                use reader = SafetensorsReader.Open path
                use t = reader.Read "a"
                Expect.equal (t.data<float32>().ToArray()) [| 1.0f; -2.0f |] "values")
        }

        test "a header with no tensors and no metadata" {
            withTempDir (fun dir ->
                let path = writeFile dir "empty.safetensors" (imageOf "{}" [||])
                let h = SafetensorsHeader.Read path
                Expect.equal h.Entries.Count 0 "no entries"
                Expect.equal h.Metadata.Count 0 "no metadata"
                Expect.equal h.DataOffset 10L "8 + N")
        }

        test "zero-sized tensors share offsets with their neighbours; unknown fields are ignored" {
            withTempDir (fun dir ->
                let text =
                    header [
                        entry "e" "F32" [ 0L; 3L ] 0L 0L
                        entry "a" "F32" [ 2L ] 0L 8L
                        "\"z\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[8,8],\"note\":{\"x\":[1]}}"
                    ]

                let path = writeFile dir "zero.safetensors" (imageOf text f32PairBytes)
                let h = SafetensorsHeader.Read path
                let order = h.EntriesInDataOrder |> Seq.map (fun e -> e.Name) |> List.ofSeq
                Expect.equal order [ "e"; "a"; "z" ] "data order"
                Expect.equal h.DataLength 8L "data length"
                use reader = SafetensorsReader.Open path
                use e = reader.Read "e"
                Expect.equal e.shape [| 0L; 3L |] "empty shape")
        }
    ]

/// A file made byte by byte: F32 [2] = [1, -2]; BF16 [2] = [1.5, -0.5]; I64 [1] = [-3]; F16 [1] = [-2].
let private knownHeader =
    header [
        entry "a" "F32" [ 2L ] 0L 8L
        entry "b" "BF16" [ 2L ] 8L 12L
        entry "c" "I64" [ 1L ] 12L 20L
        entry "d" "F16" [ 1L ] 20L 22L
    ]

let private knownData =
    Array.concat [
        f32PairBytes
        [| 0xC0uy; 0x3Fuy; 0x00uy; 0xBFuy |] // bf16 1.5 = 0x3FC0, -0.5 = 0xBF00
        [| 0xFDuy; 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy |] // -3
        [| 0x00uy; 0xC0uy |]
    ] // f16 -2 = 0xC000

let private knownTensors () = [
    "a", f32 [| 1.0f; -2.0f |]
    "b", (f32 [| 1.5f; -0.5f |]).to_type torch.ScalarType.BFloat16
    "c", torch.tensor [| -3L |]
    "d", (f32 [| -2.0f |]).to_type torch.ScalarType.Float16
]

let private pairs (tensors: (string * torch.Tensor) list) =
    tensors |> List.map (fun (n, t) -> Collections.Generic.KeyValuePair(n, t))

[<Tests>]
let read =
    testList "Safetensors.Read" [
        test "reads the values of a hand-made file" {
            withTempDir (fun dir ->
                let path = writeFile dir "known.safetensors" (imageOf knownHeader knownData)
                use reader = SafetensorsReader.Open path
                Expect.equal reader.Path path "path"
                Expect.equal reader.Entries.Count 4 "four tensors"
                Expect.equal reader.Entries["b"].DType SafetensorsDType.BF16 "dtype of b"
                Expect.equal (List.ofSeq reader.Entries["b"].Shape) [ 2L ] "shape of b"
                Expect.equal (reader.Entries["c"].Begin, reader.Entries["c"].End) (12L, 20L) "range of c"
                use a = reader.Read "a"
                use b = reader.Read "b"
                use c = reader.Read "c"
                use d = reader.Read "d"
                Expect.equal a.dtype torch.ScalarType.Float32 "a dtype"
                Expect.equal (a.data<float32>().ToArray()) [| 1.0f; -2.0f |] "a"
                Expect.equal b.dtype torch.ScalarType.BFloat16 "b dtype"
                use bf = b.to_type torch.ScalarType.Float32
                Expect.equal (bf.data<float32>().ToArray()) [| 1.5f; -0.5f |] "b"
                Expect.equal (c.data<int64>().ToArray()) [| -3L |] "c"
                use df = d.to_type torch.ScalarType.Float32
                Expect.equal (df.data<float32>().ToArray()) [| -2.0f |] "d"
                Expect.equal (bytesOf b) knownData[8..11] "b bytes")
        }

        test "each read is a fresh tensor" {
            withTempDir (fun dir ->
                let path = writeFile dir "known.safetensors" (imageOf knownHeader knownData)
                use reader = SafetensorsReader.Open path
                use first = reader.Read "a"
                first.fill_ 7.0f |> ignore
                use second = reader.Read "a"
                Expect.equal (second.data<float32>().ToArray()) [| 1.0f; -2.0f |] "unchanged")
        }

        test "reads in chunks smaller than a tensor, element by element" {
            withTempDir (fun dir ->
                let path = writeFile dir "known.safetensors" (imageOf knownHeader knownData)
                use reader = SafetensorsReader.Open path
                use a = reader.Read("a", 6)
                Expect.equal (bytesOf a) f32PairBytes "bytes")
        }

        test "integer, byte and bool dtypes read their stored bits" {
            withTempDir (fun dir ->
                let text =
                    header [
                        entry "i8" "I8" [ 2L ] 0L 2L
                        entry "u8" "U8" [ 2L ] 2L 4L
                        entry "bool" "BOOL" [ 2L ] 4L 6L
                        entry "i16" "I16" [ 1L ] 6L 8L
                        entry "i32" "I32" [ 1L ] 8L 12L
                        entry "f64" "F64" [ 1L ] 12L 20L
                    ]

                let data =
                    Array.concat [
                        [| 0xFFuy; 0x05uy |]
                        [| 0xFFuy; 0x05uy |]
                        [| 0x01uy; 0x00uy |]
                        [| 0x00uy; 0x80uy |]
                        [| 0x01uy; 0x02uy; 0x03uy; 0x04uy |]
                        BitConverter.GetBytes 0.25
                    ]

                let path = writeFile dir "ints.safetensors" (imageOf text data)
                use reader = SafetensorsReader.Open path
                use i8 = reader.Read "i8"
                use u8 = reader.Read "u8"
                use bo = reader.Read "bool"
                use i16 = reader.Read "i16"
                use i32 = reader.Read "i32"
                use f64 = reader.Read "f64"
                Expect.equal (i8.data<sbyte>().ToArray()) [| -1y; 5y |] "I8"
                Expect.equal (u8.data<byte>().ToArray()) [| 255uy; 5uy |] "U8"
                Expect.equal (bo.data<bool>().ToArray()) [| true; false |] "BOOL"
                Expect.equal (i16.data<int16>().ToArray()) [| Int16.MinValue |] "I16"
                Expect.equal (i32.data<int>().ToArray()) [| 0x04030201 |] "I32"
                Expect.equal (f64.data<float>().ToArray()) [| 0.25 |] "F64")
        }

        test "F8 and unsigned wide dtypes are described but not readable" {
            withTempDir (fun dir ->
                let text =
                    header [ entry "f8" "F8_E4M3" [ 2L ] 0L 2L; entry "u16" "U16" [ 1L ] 2L 4L ]

                let path = writeFile dir "f8.safetensors" (imageOf text (Array.zeroCreate 4))
                use reader = SafetensorsReader.Open path
                Expect.equal reader.Entries["f8"].DType SafetensorsDType.F8_E4M3 "described"

                for name in [ "f8"; "u16" ] do
                    let e = Expect.throwsC (fun () -> reader.Read name |> ignore) id
                    Expect.isTrue (e :? LlgbmException) "an LlgbmException"
                    Expect.stringContains e.Message name "names the tensor"
                    Expect.stringContains e.Message path "names the file")
        }

        test "an unknown name lists the closest names" {
            withTempDir (fun dir ->
                let path = writeFile dir "known.safetensors" (imageOf knownHeader knownData)
                use reader = SafetensorsReader.Open path

                let e =
                    Expect.throwsC (fun () -> reader.Read "bb" |> ignore) (fun e -> e :?> TensorNotFoundException)

                Expect.equal e.Suggestions[0] "b" "closest first"
                Expect.stringContains e.Message "'bb'" "names the request"
                Expect.stringContains e.Message path "names the file")
        }

        test "a reader fails on a read after being disposed" {
            withTempDir (fun dir ->
                let path = writeFile dir "known.safetensors" (imageOf knownHeader knownData)
                let reader = SafetensorsReader.Open path
                reader.Dispose()
                Expect.throwsT<ObjectDisposedException> (fun () -> reader.Read "a" |> ignore) "disposed")
        }
    ]

[<Tests>]
let dtypes =
    testList "Safetensors.DType" [
        test "element sizes and names" {
            let sizes =
                SafetensorsDTypes.All
                |> Seq.map (fun d -> SafetensorsDTypes.Name d, SafetensorsDTypes.ElementSize d)
                |> List.ofSeq

            Expect.equal
                sizes
                [
                    "BOOL", 1
                    "U8", 1
                    "I8", 1
                    "F8_E5M2", 1
                    "F8_E4M3", 1
                    "I16", 2
                    "U16", 2
                    "F16", 2
                    "BF16", 2
                    "I32", 4
                    "U32", 4
                    "F32", 4
                    "F64", 8
                    "I64", 8
                    "U64", 8
                ]
                "sizes"
        }

        test "the TorchSharp mapping round trips and agrees on element sizes" {
            for d in SafetensorsDTypes.All do
                match SafetensorsDTypes.ToScalarType d |> Option.ofNullable with
                | Some st ->
                    Expect.equal (SafetensorsDTypes.FromScalarType st |> Option.ofNullable) (Some d) (string d)
                    use t = torch.zeros ([| 1L |], st)
                    Expect.equal (t.element_size ()) (int64 (SafetensorsDTypes.ElementSize d)) (string d)
                | None ->
                    Expect.contains
                        [
                            SafetensorsDType.F8_E4M3
                            SafetensorsDType.F8_E5M2
                            SafetensorsDType.U16
                            SafetensorsDType.U32
                            SafetensorsDType.U64
                        ]
                        d
                        "only these lack a TorchSharp type"
        }
    ]

let private readAll path =
    use reader = SafetensorsReader.Open path

    reader.Header.EntriesInDataOrder
    |> Seq.map (fun e ->
        use t = reader.Read e.Name
        e.Name, (t.dtype, t.shape, bytesOf t))
    |> List.ofSeq

[<Tests>]
let save =
    testList "Safetensors.Save" [
        test "writes the header and bytes computed by hand" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "out.safetensors")
                let tensors = knownTensors ()
                SafetensorsWriter.Save(path, pairs tensors)
                let file = File.ReadAllBytes path
                let n = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(0, 8)) |> int
                Expect.equal (n % 8) 0 "header length is a multiple of 8"
                Expect.equal file[8] (byte '{') "header starts with {"
                Expect.equal file.Length (8 + n + knownData.Length) "file length"
                Expect.equal file[8 + n ..] knownData "data bytes"
                let text = Encoding.UTF8.GetString(file, 8, n)
                let json = text.TrimEnd ' '
                Expect.equal json[json.Length - 1] '}' "the JSON is padded with spaces only"
                Expect.isLessThan (text.Length - json.Length) 8 "less than 8 bytes of padding"
                use document = JsonDocument.Parse text
                let root = document.RootElement
                Expect.equal (root.GetProperty("__metadata__").GetProperty("format").GetString()) "pt" "format"

                let expected = [
                    "a", "F32", [ 2L ], [ 0L; 8L ]
                    "b", "BF16", [ 2L ], [ 8L; 12L ]
                    "c", "I64", [ 1L ], [ 12L; 20L ]
                    "d", "F16", [ 1L ], [ 20L; 22L ]
                ]

                for name, dtype, shape, offsets in expected do
                    let e = root.GetProperty name
                    Expect.equal (e.GetProperty("dtype").GetString()) dtype $"{name} dtype"

                    let ints (p: string) =
                        e.GetProperty(p).EnumerateArray()
                        |> Seq.map (fun x -> x.GetInt64())
                        |> List.ofSeq

                    Expect.equal (ints "shape") shape $"{name} shape"
                    Expect.equal (ints "data_offsets") offsets $"{name} offsets"

                for _, t in tensors do
                    Expect.isFalse t.IsInvalid "the caller's tensors are not disposed"
                    t.Dispose())
        }

        test "metadata is written, with format pt unless given" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "m.safetensors")
                use t = f32 [| 1.0f |]
                SafetensorsWriter.Save(path, pairs [ "t", t ], readOnlyDict [ "k", "v" ])

                do
                    use reader = SafetensorsReader.Open path

                    Expect.equal
                        (reader.Metadata |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq)
                        (Map [ "format", "pt"; "k", "v" ])
                        "metadata"

                SafetensorsWriter.Save(path, pairs [ "t", t ], readOnlyDict [ "format", "np" ])
                use reader = SafetensorsReader.Open path
                Expect.equal reader.Metadata["format"] "np" "given format kept")
        }

        test "non-contiguous tensors are written in row-major order; no tensors gives a valid file" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "t.safetensors")
                use m = (f32 [| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f; 6.0f |]).reshape(2L, 3L)
                use mt = m.t ()
                Expect.isFalse (mt.is_contiguous ()) "a transposed view"
                SafetensorsWriter.Save(path, pairs [ "mt", mt ])
                use reader = SafetensorsReader.Open path
                use back = reader.Read "mt"
                Expect.equal back.shape [| 3L; 2L |] "shape"
                Expect.equal (back.data<float32>().ToArray()) [| 1.0f; 4.0f; 2.0f; 5.0f; 3.0f; 6.0f |] "values"
                let empty = Path.Combine(dir, "empty.safetensors")
                SafetensorsWriter.Save(empty, [])
                Expect.equal (SafetensorsHeader.Read(empty).Entries.Count) 0 "no tensors")
        }

        test "writes in chunks smaller than a tensor" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "chunks.safetensors")
                use t = torch.arange (10L, dtype = torch.ScalarType.Int64)
                SafetensorsWriter.Save(path, pairs [ "t", t ], null, 24)
                use reader = SafetensorsReader.Open path
                use back = reader.Read("t", 16)
                Expect.equal (bytesOf back) (bytesOf t) "bytes")
        }

        test "rejects duplicate, reserved and empty names and dtypes safetensors lacks" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "bad.safetensors")
                use t = f32 [| 1.0f |]
                use c = torch.complex (t, t)

                for tensors in [ [ "x", t; "x", t ]; [ "__metadata__", t ]; [ "", t ] ] do
                    Expect.throwsT<ArgumentException>
                        (fun () -> SafetensorsWriter.Save(path, pairs tensors))
                        "bad names"

                let e = Expect.throwsC (fun () -> SafetensorsWriter.Save(path, pairs [ "c", c ])) id
                Expect.isTrue (e :? LlgbmException) "complex"
                Expect.stringContains e.Message "'c'" "names the tensor"
                Expect.isEmpty (dirEntries dir) "nothing written")
        }

        test "a failing tensor enumeration leaves the old file intact and no temporary files" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "model.safetensors")
                use old = f32 [| 9.0f |]
                SafetensorsWriter.Save(path, pairs [ "old", old ])
                let before = File.ReadAllBytes path
                use t = f32 [| 1.0f; 2.0f |]

                let failing =
                    seq {
                        Collections.Generic.KeyValuePair("t", t)
                        failwith "boom"
                    }

                Expect.throws (fun () -> SafetensorsWriter.Save(path, failing)) "the error surfaces"
                Expect.equal (File.ReadAllBytes path) before "old file intact"
                Expect.equal (dirEntries dir) [| "model.safetensors" |] "no temporary files")
        }

        test "a write failing midway leaves the old file intact and no temporary files" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "model.safetensors")
                File.WriteAllBytes(path, [| 1uy; 2uy; 3uy |])

                Expect.throws
                    (fun () ->
                        AtomicFile.Write(
                            path,
                            fun stream ->
                                stream.Write(Array.zeroCreate<byte> 100, 0, 100)
                                failwith "disk full"
                        ))
                    "the error surfaces"

                Expect.equal (File.ReadAllBytes path) [| 1uy; 2uy; 3uy |] "old file intact"
                Expect.equal (dirEntries dir) [| "model.safetensors" |] "no temporary files")
        }

        test "saving over an existing file replaces it" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "model.safetensors")
                use a = f32 [| 1.0f |]
                use b = torch.tensor [| 5L; 6L |]
                SafetensorsWriter.Save(path, pairs [ "a", a ])
                SafetensorsWriter.Save(path, pairs [ "b", b ])
                Expect.equal (readAll path |> List.map fst) [ "b" ] "new content"
                Expect.equal (dirEntries dir) [| "model.safetensors" |] "one file")
        }
    ]

/// A shape of up to 4 dimensions, each 0 to 4 (so 0-sized dimensions and scalars occur).
let private shapeOf (dims: byte list) =
    dims |> List.truncate 4 |> List.map (fun d -> int64 (d % 5uy)) |> Array.ofList

let private numel (shape: int64[]) = Array.fold (*) 1L shape |> int

let private roundTrip (make: Random -> int -> torch.Tensor) (dims: byte list) (seed: int) =
    let shape = shapeOf dims
    let rng = Random seed
    use flat = make rng (numel shape)
    use t = flat.reshape shape

    let dir =
        Path.Combine(Path.GetTempPath(), "llgbm-st-" + Guid.NewGuid().ToString("N"))

    Directory.CreateDirectory dir |> ignore

    try
        let path = Path.Combine(dir, "p.safetensors")
        SafetensorsWriter.Save(path, pairs [ "t", t ])
        use reader = SafetensorsReader.Open path
        use back = reader.Read "t"
        back.dtype = t.dtype && back.shape = shape && bytesOf back = bytesOf t
    finally
        Directory.Delete(dir, true)

let private randomF32 (rng: Random) n =
    // Arbitrary finite bit patterns, subnormals and both zeros included (NaN and ±∞ are refused by the writer, see
    // NonFiniteTests); an all-ones exponent is cleared to zero, which keeps the sign and mantissa bits arbitrary.
    let finite bits =
        if bits &&& 0x7F800000 = 0x7F800000 then
            bits &&& ~~~0x7F800000
        else
            bits

    torch.tensor (Array.init n (fun _ -> BitConverter.Int32BitsToSingle(finite (rng.Next() ^^^ (rng.Next 2 <<< 31)))))

/// Arbitrary finite 16-bit patterns of a half-width float whose exponent bits are `exponent` (an all-ones exponent,
/// NaN or ±∞, is cleared to zero), reinterpreted as `dtype`.
let private randomHalf (rng: Random) n (exponent: int) (dtype: torch.ScalarType) =
    let finite bits =
        if bits &&& exponent = exponent then
            bits &&& ~~~exponent
        else
            bits

    let bytes = Array.zeroCreate<byte>(2 * n)

    for i in 0 .. n - 1 do
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), uint16 (finite (rng.Next 65536)))

    let t = torch.empty ([| int64 n |], dtype = dtype)
    t.bytes <- Span bytes
    t

let private config = {
    FsCheckConfig.defaultConfig with
        maxTest = 25
}

[<Tests>]
let roundTrips =
    testList "Safetensors.RoundTrip" [
        testPropertyWithConfig config "F32" (roundTrip randomF32)
        testPropertyWithConfig config "F16" (roundTrip (fun rng n -> randomHalf rng n 0x7C00 torch.ScalarType.Float16))
        testPropertyWithConfig
            config
            "BF16"
            (roundTrip (fun rng n -> randomHalf rng n 0x7F80 torch.ScalarType.BFloat16))
        testPropertyWithConfig
            config
            "I64"
            (roundTrip (fun rng n ->
                torch.tensor (Array.init n (fun _ -> rng.NextInt64(Int64.MinValue, Int64.MaxValue)))))
        testPropertyWithConfig
            config
            "BOOL"
            (roundTrip (fun rng n -> torch.tensor (Array.init n (fun _ -> rng.Next 2 = 1))))
    ]
