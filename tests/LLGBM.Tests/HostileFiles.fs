/// Crafted hostile files: values written straight into the bytes of a safetensors file (the header is parsed here,
/// independently of LLGBM's reader), so that a test can hand a command a checkpoint or adapter holding NaN or ±∞.
module LLGBM.Tests.HostileFiles

open System
open System.Buffers.Binary
open System.IO
open System.Text.Json

/// Overwrites element `index` (row-major) of tensor `name` in the safetensors file at `path` with `value`; the
/// tensor's dtype must be F32 or BF16 (BF16 keeps the upper 16 bits of the float32, which is exact for NaN and ±∞).
let poison (path: string) (name: string) (index: int64) (value: float32) =
    let bytes = File.ReadAllBytes path
    let n = int (BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(bytes, 0, 8)))
    use header = JsonDocument.Parse(ReadOnlyMemory(bytes, 8, n))
    let entry = header.RootElement.GetProperty name
    let start = 8 + n + entry.GetProperty("data_offsets").[0].GetInt32()

    match entry.GetProperty("dtype").GetString() with
    | "F32" -> BinaryPrimitives.WriteSingleLittleEndian(Span(bytes, start + int index * 4, 4), value)
    | "BF16" ->
        let bits = BitConverter.SingleToUInt32Bits value
        BinaryPrimitives.WriteUInt16LittleEndian(Span(bytes, start + int index * 2, 2), uint16 (bits >>> 16))
    | other -> failwith $"poison: dtype {other} is not F32 or BF16"

    File.WriteAllBytes(path, bytes)

/// The one-line error a command prints for tensor `tensor` of the file `file` holding `detail`.
let nonFiniteError (file: string) (tensor: string) (detail: string) =
    $"error: '{file}': tensor '{tensor}' holds {detail}; expected only finite numbers."

/// Every file under `dir` (recursively), or none when it does not exist.
let filesUnder (dir: string) =
    if Directory.Exists dir then
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories) |> Array.sort
    else
        [||]
