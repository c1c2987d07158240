/// An independent reader of TensorBoard event files for the tests: CRC-32C computed bit by bit from its definition,
/// TFRecord framing checked record by record, and a minimal protobuf wire-format decoder for the Event, Summary,
/// Summary.Value and SessionLog messages (field numbers from tensorboard/compat/proto/event.proto and summary.proto).
module LLGBM.Tests.TfEventsReader

open System
open System.Buffers.Binary
open System.Text
open Expecto

/// CRC-32C by its definition: reflected polynomial 0x82F63B78, one bit per step, initial value and final XOR all ones.
let bitwiseCrc32c (data: byte[]) =
    let mutable crc = 0xFFFFFFFFu

    for b in data do
        crc <- crc ^^^ uint32 b

        for _ in 1..8 do
            crc <-
                if crc &&& 1u <> 0u then
                    (crc >>> 1) ^^^ 0x82F63B78u
                else
                    crc >>> 1

    ~~~crc

/// TFRecord's masking: rotate right by 15, add 0xa282ead8, wrapping at 2³².
let masked (crc: uint32) =
    ((crc >>> 15) ||| (crc <<< 17)) + 0xa282ead8u

/// The data of each TFRecord in `file`, failing the test when a length or data CRC does not verify or the file ends
/// inside a record.
let records (file: byte[]) : byte[] list =
    let rec go offset acc =
        if offset = file.Length then
            List.rev acc
        else
            if file.Length - offset < 12 then
                failtestf "record at byte %d: header cut short" offset

            let lengthBytes = file[offset .. offset + 7]
            let length = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan lengthBytes)

            let lengthCrc =
                BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan file[offset + 8 .. offset + 11])

            if lengthCrc <> masked (bitwiseCrc32c lengthBytes) then
                failtestf "record at byte %d: length CRC %08x does not verify" offset lengthCrc

            let start = offset + 12
            let stop = start + int length

            if file.Length < stop + 4 then
                failtestf "record at byte %d: data cut short" offset

            let data = file[start .. stop - 1]

            let dataCrc =
                BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan file[stop .. stop + 3])

            if dataCrc <> masked (bitwiseCrc32c data) then
                failtestf "record at byte %d: data CRC %08x does not verify" offset dataCrc

            go (stop + 4) (data :: acc)

    go 0 []

/// A decoded protobuf field value by wire type.
type Wire =
    | Varint of uint64
    | Fixed64 of uint64
    | Bytes of byte[]
    | Fixed32 of uint32

/// The (field number, value) pairs of a protobuf message, in order.
let fields (message: byte[]) : (int * Wire) list =
    let mutable i = 0

    let varint () =
        let mutable result = 0UL
        let mutable shift = 0
        let mutable go = true

        while go do
            let b = message[i]
            i <- i + 1
            result <- result ||| (uint64 (b &&& 0x7Fuy) <<< shift)
            shift <- shift + 7
            go <- b &&& 0x80uy <> 0uy

        result

    [
        while i < message.Length do
            let key = varint ()
            let field = int (key >>> 3)

            match int (key &&& 7UL) with
            | 0 -> yield field, Varint(varint ())
            | 1 ->
                let v = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(message, i, 8))
                i <- i + 8
                yield field, Fixed64 v
            | 2 ->
                let n = int (varint ())
                let v = message[i .. i + n - 1]
                i <- i + n
                yield field, Bytes v
            | 5 ->
                let v = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(message, i, 4))
                i <- i + 4
                yield field, Fixed32 v
            | w -> failtestf "field %d: unexpected wire type %d" field w
    ]

/// The parts of a tensorboard.Event the writer uses.
type Event = {
    WallTime: float option
    Step: int64
    FileVersion: string option
    Values: (string * float32) list
    SessionStatus: int option
}

let private summaryValue (bytes: byte[]) =
    let mutable tag = None
    let mutable value = None

    for field, wire in fields bytes do
        match field, wire with
        | 1, Bytes b -> tag <- Some(Encoding.UTF8.GetString b)
        | 2, Fixed32 v -> value <- Some(BitConverter.Int32BitsToSingle(int v))
        | f, w -> failtestf "Summary.Value: unexpected field %d %A" f w

    match tag, value with
    | Some t, Some v -> t, v
    | _ -> failtestf "Summary.Value without tag or simple_value"

/// Decodes an Event message (fields wall_time 1, step 2, file_version 3, summary 5, session_log 7).
let event (bytes: byte[]) : Event =
    let mutable e = {
        WallTime = None
        Step = 0L
        FileVersion = None
        Values = []
        SessionStatus = None
    }

    for field, wire in fields bytes do
        match field, wire with
        | 1, Fixed64 v ->
            e <- {
                e with
                    WallTime = Some(BitConverter.Int64BitsToDouble(int64 v))
            }
        | 2, Varint v -> e <- { e with Step = int64 v }
        | 3, Bytes b ->
            e <- {
                e with
                    FileVersion = Some(Encoding.UTF8.GetString b)
            }
        | 5, Bytes b ->
            let values = [
                for f, w in fields b do
                    match f, w with
                    | 1, Bytes v -> summaryValue v
                    | _ -> failtestf "Summary: unexpected field %d %A" f w
            ]

            e <- { e with Values = e.Values @ values }
        | 7, Bytes b ->
            for f, w in fields b do
                match f, w with
                | 1, Varint s -> e <- { e with SessionStatus = Some(int s) }
                | _ -> failtestf "SessionLog: unexpected field %d %A" f w
        | f, w -> failtestf "Event: unexpected field %d %A" f w

    e

/// Every event of an event file, its records' CRCs verified.
let readEvents (path: string) =
    use stream =
        new IO.FileStream(path, IO.FileMode.Open, IO.FileAccess.Read, IO.FileShare.ReadWrite)

    use memory = new IO.MemoryStream()
    stream.CopyTo memory
    records (memory.ToArray()) |> List.map event
