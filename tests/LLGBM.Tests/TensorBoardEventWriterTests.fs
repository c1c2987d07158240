module LLGBM.Tests.TensorBoardEventWriterTests

open System
open System.Collections.Generic
open System.IO
open System.Text.RegularExpressions
open Expecto
open LLGBM
open LLGBM.Training
open LLGBM.Tests.TestModels
open LLGBM.Tests.TfEventsReader
open LLGBM.Tests.SafetensorsTests.Kit

let private now () =
    (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).TotalSeconds

let private ordered (pairs: (string * float) list) =
    let d = Dictionary<string, float>()

    for k, v in pairs do
        d[k] <- v

    d :> IReadOnlyDictionary<string, float>

let private readBytes (path: string) =
    use s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)
    use m = new MemoryStream()
    s.CopyTo m
    m.ToArray()

[<Tests>]
let tests =
    testList "TensorBoardEventWriter" [
        test "Creates DIR/events.out.tfevents.{unix seconds}.{hostname}, the directory too" {
            withTempDir (fun root ->
                let dir = Path.Combine(root, "runs", "tb")
                let before = DateTimeOffset.UtcNow.ToUnixTimeSeconds()
                use w = new TensorBoardEventWriter(dir)
                let after = DateTimeOffset.UtcNow.ToUnixTimeSeconds()
                Expect.equal (Path.GetDirectoryName w.FilePath) dir "in the directory"
                let name = Path.GetFileName w.FilePath
                let m = Regex.Match(name, @"^events\.out\.tfevents\.(\d{10})\.(.+)$")
                Expect.isTrue m.Success $"name {name}"
                let seconds = int64 m.Groups[1].Value
                Expect.isTrue (seconds >= before && seconds <= after) $"{seconds} in [{before}, {after}]"
                Expect.equal m.Groups[2].Value (Net.Dns.GetHostName()) "host name"
                Expect.sequenceEqual (Directory.GetFiles dir) [ w.FilePath ] "one file")
        }

        test
            "The file starts with the version record: the published 12-byte header of every event file, then brain.Event:2" {
            withTempDir (fun dir ->
                let before = now ()

                let path =
                    use w = new TensorBoardEventWriter(dir)
                    w.FilePath

                let after = now ()
                let bytes = readBytes path
                // Length 24 (wall_time: 1 + 8 bytes, file_version: 2 + 13 bytes) as uint64 LE, then its masked CRC-32C
                // 0x224B7FA3 as uint32 LE: the bytes b'\x18\0\0\0\0\0\0\0\xa3\x7fK"' every TensorBoard event file begins with.
                Expect.sequenceEqual
                    bytes[0..11]
                    [| 0x18uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0xA3uy; 0x7Fuy; 0x4Buy; 0x22uy |]
                    "header"

                match readEvents path with
                | [ e ] ->
                    Expect.equal e.FileVersion (Some "brain.Event:2") "file_version"
                    Expect.equal e.Step 0L "no step"
                    Expect.isEmpty e.Values "no summary"
                    let t = e.WallTime.Value
                    Expect.isTrue (t >= before - 1e-3 && t <= after + 1e-3) $"wall_time {t} in [{before}, {after}]"
                | events -> failtestf "expected one event, got %A" events)
        }

        test "Scalars and Scalar read back with their steps, tags in order and float32 values; CRCs verify" {
            withTempDir (fun dir ->
                let groups = [
                    0L, [ "loss/total", 2.5; "loss/delta", 0.125; "lr", 3e-4 ]
                    1L, [ "loss/total", 1.75; "delta/cos", -0.3333333333333333 ]
                    5L, [ "Δ/norm ü", 1e30; "tiny", 1e-40 ]
                    (1L <<< 40) + 7L, [ "loss/total", 0.1 ]
                    -3L, [ "negative step", 42.0 ]
                ]

                let before = now ()

                let path =
                    use w = new TensorBoardEventWriter(dir)

                    for step, pairs in groups do
                        w.Scalars(ordered pairs, step)

                    w.Scalar("single", Math.PI, 9L)
                    w.Scalars(ordered [], 10L)
                    w.FilePath

                let after = now ()

                match readEvents path with
                | version :: events ->
                    Expect.equal version.FileVersion (Some "brain.Event:2") "version first"
                    let expected = groups @ [ 9L, [ "single", Math.PI ] ]
                    Expect.equal events.Length expected.Length "one event per step group, none for an empty group"

                    for e, (step, pairs) in List.zip events expected do
                        Expect.equal e.Step step "step"
                        Expect.isNone e.FileVersion "no version"
                        Expect.isNone e.SessionStatus "no session log"
                        Expect.equal e.Values [ for tag, v in pairs -> tag, float32 v ] $"values at step {step}"
                        let t = e.WallTime.Value
                        Expect.isTrue (t >= before - 1e-3 && t <= after + 1e-3) "wall_time"
                | [] -> failtest "no events")
        }

        test "Every record's masked CRCs are checked: a flipped data byte is caught" {
            withTempDir (fun dir ->
                let path =
                    use w = new TensorBoardEventWriter(dir)
                    w.Scalar("loss", 1.0, 3L)
                    w.FilePath

                let bytes = readBytes path
                Expect.equal (records bytes).Length 2 "two records verify"
                let corrupt = Array.copy bytes
                corrupt[corrupt.Length - 6] <- corrupt[corrupt.Length - 6] ^^^ 1uy

                let message =
                    try
                        records corrupt |> ignore
                        ""
                    with e ->
                        e.Message

                Expect.stringContains message "data CRC" "the corruption is detected")
        }

        test "Each step group is flushed: readable while the writer is open" {
            withTempDir (fun dir ->
                use w = new TensorBoardEventWriter(dir)
                w.Scalars(ordered [ "a", 1.0; "b", 2.0 ], 4L)
                let events = readEvents w.FilePath
                Expect.equal events.Length 2 "version and the step"
                Expect.equal (List.last events).Values [ "a", 1.0f; "b", 2.0f ] "values"
                w.Scalar("a", 3.0, 5L)
                Expect.equal (readEvents w.FilePath).Length 3 "the next step too")
        }

        test "A resumed writer records SessionLog START at the step after the checkpoint, after the version event" {
            withTempDir (fun dir ->
                let path =
                    use w = new TensorBoardEventWriter(dir, 120L)
                    w.Scalar("loss", 0.5, 121L)
                    w.FilePath

                match readEvents path with
                | [ version; start; scalar ] ->
                    Expect.equal version.FileVersion (Some "brain.Event:2") "version"
                    Expect.equal start.SessionStatus (Some 1) "SessionLog.START = 1"
                    Expect.equal start.Step 121L "at the step after the checkpoint"
                    Expect.isEmpty start.Values "no values"
                    Expect.equal scalar.Values [ "loss", 0.5f ] "then the scalars"
                | events -> failtestf "expected three events, got %A" events)
        }

        test "Writers opened in the same directory in the same second get distinct files" {
            withTempDir (fun dir ->
                let paths = [
                    for i in 0..2 do
                        use w = new TensorBoardEventWriter(dir)
                        w.Scalar("i", float i, int64 i)
                        yield w.FilePath
                ]

                Expect.equal (List.distinct paths).Length 3 "distinct"
                Expect.equal (Directory.GetFiles dir).Length 3 "three files"

                for i, p in List.indexed paths do
                    Expect.stringContains (Path.GetFileName p) "tfevents" "TensorBoard's name filter"
                    Expect.equal (List.last (readEvents p)).Values [ "i", float32 i ] "each its own events")
        }

        test "An empty tag is an error naming the file; a disposed writer refuses to write" {
            withTempDir (fun dir ->
                let w = new TensorBoardEventWriter(dir)
                let message = errorMessage<LlgbmException>(fun () -> w.Scalar("", 1.0, 2L))
                Expect.stringContains message w.FilePath "names the file"
                Expect.stringContains message "tag" "says what is wrong"
                w.Dispose()
                w.Dispose()
                thrown<ObjectDisposedException>(fun () -> w.Scalar("a", 1.0, 2L)) |> ignore)
        }
    ]
