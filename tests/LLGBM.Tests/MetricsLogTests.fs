module LLGBM.Tests.MetricsLogTests

open System
open System.Collections.Generic
open System.IO
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open Expecto
open LLGBM
open LLGBM.Training
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

let private values (pairs: (string * float) list) =
    let d = Dictionary<string, float>()

    for k, v in pairs do
        d[k] <- v

    d :> IReadOnlyDictionary<string, float>

/// The file's lines, parsed here with JsonDocument (not through MetricsLog).
let private linesOf (path: string) =
    File.ReadAllText path
    |> fun t -> t.Split('\n', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement.Clone())

let private stepsOf (path: string) =
    linesOf path
    |> Array.map (fun e -> e.GetProperty("step").GetInt64())
    |> List.ofArray

/// A file with one `{"step": s, "loss": s / 10}` line per step, written by hand.
let private handWritten (path: string) (steps: int64 list) (tail: string) =
    let lines = [ for s in steps -> $"{{\"step\": {s}, \"loss\": {float s / 10.0}}}\n" ]
    File.WriteAllText(path, String.Join("", lines) + tail)

let private tempFiles (dir: string) =
    Directory.GetFiles dir
    |> Array.filter (fun f -> f.EndsWith AtomicFile.TempSuffix)

[<Tests>]
let tests =
    testList "MetricsLog" [
        test "Appends one JSON object per line with step, wall_time and the values, each line flushed" {
            withTempDir (fun root ->
                let path = Path.Combine(root, "run", MetricsLog.FileName)
                let before = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).TotalSeconds
                use log = MetricsLog.StartNew path
                log.Append(1L, values [ "loss/total", 2.5; "delta/cos", -0.1 ])
                log.Append(2L, values [ "loss/total", 0.1 + 0.2 ])
                // Read while the log is open: the lines are already in the file.
                let lines =
                    use s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)
                    use r = new StreamReader(s)
                    r.ReadToEnd()

                let after = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).TotalSeconds
                let parsed = lines.Split('\n')
                Expect.equal parsed.Length 3 "two lines, each ending in a newline"
                Expect.equal parsed[2] "" "nothing after the last newline"
                let first = JsonDocument.Parse(parsed[0]).RootElement
                Expect.equal (first.GetProperty("step").GetInt64()) 1L "step"
                Expect.equal (first.GetProperty("loss/total").GetDouble()) 2.5 "value"
                Expect.equal (first.GetProperty("delta/cos").GetDouble()) -0.1 "value"
                let t = first.GetProperty("wall_time").GetDouble()
                Expect.isTrue (t >= before - 1e-3 && t <= after + 1e-3) "wall_time"
                let second = JsonDocument.Parse(parsed[1]).RootElement
                Expect.equal (second.GetProperty("loss/total").GetDouble()) (0.1 + 0.2) "doubles round-trip exactly"
                Expect.equal log.LastStep (Nullable 2L) "last step")
        }

        test "Non-finite values are written as the strings NaN, Infinity, -Infinity" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)

                do
                    use log = MetricsLog.StartNew path
                    log.Append(1L, values [ "a", nan; "b", infinity; "c", -infinity ])

                let e = (linesOf path)[0]
                Expect.equal (e.GetProperty("a").GetString() |> string) "NaN" "NaN"
                Expect.equal (e.GetProperty("b").GetString() |> string) "Infinity" "+inf"
                Expect.equal (e.GetProperty("c").GetString() |> string) "-Infinity" "-inf")
        }

        test "Read returns the objects in file order" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)

                do
                    use log = MetricsLog.StartNew path
                    log.Append(3L, values [ "x", 1.0 ])

                    log.Append(
                        JsonObject(dict [ "step", JsonValue.Create 4L :> JsonNode; "note", JsonValue.Create "eval" ])
                    )

                let entries = MetricsLog.Read path
                Expect.equal entries.Count 2 "two"
                let first, second = entries[0], entries[1]
                Expect.equal (first["step"].GetValue<int64>()) 3L "first step"
                Expect.equal (first["x"].GetValue<float>()) 1.0 "value"
                Expect.equal (second["note"].GetValue<string>()) "eval" "an object appended as given")
        }

        test "StartNew replaces an existing log by an empty one" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)
                handWritten path [ 1L; 2L ] ""

                do
                    use log = MetricsLog.StartNew path
                    log.Append(1L, values [ "loss", 9.0 ])

                Expect.equal (stepsOf path) [ 1L ] "only the new line"
                let line = (linesOf path)[0]
                Expect.equal (line.GetProperty("loss").GetDouble()) 9.0 "the new value")
        }

        test "Resume at step S keeps the lines with step <= S verbatim, drops the later ones, and appends after them" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)
                handWritten path [ 10L; 20L; 30L; 40L; 50L ] ""
                let original = File.ReadAllLines path

                do
                    use log = MetricsLog.Resume(path, 30L)
                    Expect.equal log.KeptLines 3 "kept"
                    Expect.equal log.DroppedLines 2 "dropped"
                    Expect.isEmpty log.Warnings "no warnings"
                    Expect.equal log.LastStep (Nullable 30L) "last kept step"
                    Expect.sequenceEqual (File.ReadAllLines path) original[0..2] "kept lines unchanged"
                    log.Append(31L, values [ "loss", 3.1 ])
                    log.Append(40L, values [ "loss", 4.0 ])

                Expect.equal (stepsOf path) [ 10L; 20L; 30L; 31L; 40L ] "no duplicate or future steps"
                Expect.isEmpty (tempFiles dir) "no temporary file left")
        }

        test "After resuming at S, a step <= S or a decreasing step is refused, naming the file" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)
                handWritten path [ 1L; 2L; 3L ] ""
                use log = MetricsLog.Resume(path, 2L)

                let message =
                    errorMessage<LlgbmException>(fun () -> log.Append(2L, values [ "loss", 1.0 ]))

                Expect.stringContains message path "names the file"
                Expect.stringContains message "step 2" "names the step"
                log.Append(5L, values [ "loss", 1.0 ])
                log.Append(5L, values [ "eval", 1.0 ])

                errorMessage<LlgbmException>(fun () -> log.Append(4L, values [ "loss", 1.0 ]))
                |> fun m -> Expect.stringContains m "must not decrease" "decreasing"

                Expect.equal (stepsOf path) [ 1L; 2L; 5L; 5L ] "only the accepted lines")
        }

        test "A truncated last line is dropped with a warning, on Resume and on Read" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)
                // An interrupted write: the last line stops in the middle of a number, with no newline.
                handWritten path [ 1L; 2L; 3L ] "{\"step\": 4, \"loss\": 0.3"
                let warnings = ResizeArray<string>()
                let entries = MetricsLog.Read(path, fun w -> warnings.Add w)
                Expect.equal [ for e in entries -> e["step"].GetValue<int64>() ] [ 1L; 2L; 3L ] "Read skips it"
                Expect.equal warnings.Count 1 "Read warns once"
                Expect.stringContains warnings[0] "line 4" "names the line"

                do
                    use log = MetricsLog.Resume(path, 3L)
                    Expect.equal log.Warnings.Count 1 "Resume warns"
                    Expect.stringContains log.Warnings[0] path "names the file"
                    Expect.stringContains log.Warnings[0] "line 4" "names the line"
                    Expect.equal log.KeptLines 3 "the complete lines"
                    log.Append(4L, values [ "loss", 0.4 ])

                Expect.equal (stepsOf path) [ 1L; 2L; 3L; 4L ] "the resumed step 4 replaces the torn one"
                Expect.stringContains (File.ReadAllText path) "\n{\"step\":4," "on a line of its own")
        }

        test "A complete last line without a newline is kept, and the next line goes on a new line" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)
                handWritten path [ 1L ] "{\"step\": 2, \"loss\": 0.2}"

                do
                    use log = MetricsLog.Resume(path, 2L)
                    Expect.isEmpty log.Warnings "complete"
                    log.Append(3L, values [ "loss", 0.3 ])

                Expect.equal (stepsOf path) [ 1L; 2L; 3L ] "all three")
        }

        test "A malformed line before the last one is an error naming the file and line; the file is untouched" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, MetricsLog.FileName)
                File.WriteAllText(path, "{\"step\": 1}\n{\"step\": 2\n{\"step\": 3}\n")
                let before = File.ReadAllBytes path

                let message =
                    errorMessage<LlgbmException>(fun () -> MetricsLog.Resume(path, 5L) |> ignore)

                Expect.stringContains message path "names the file"
                Expect.stringContains message "line 2" "names the line"
                Expect.sequenceEqual (File.ReadAllBytes path) before "untouched"

                File.WriteAllText(path, "{\"step\": 1}\n{\"loss\": 2}\n")
                let message = errorMessage<LlgbmException>(fun () -> MetricsLog.Read path |> ignore)
                Expect.stringContains message "line 2" "a line without a step"
                Expect.stringContains message "\"step\"" "says what was expected"

                File.WriteAllText(path, "{\"step\": 1.5}\n")

                errorMessage<LlgbmException>(fun () -> MetricsLog.Read path |> ignore)
                |> fun m -> Expect.stringContains m "integer" "a fractional step")
        }

        test "Resume of a missing file starts an empty log; blank lines are ignored" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "sub", MetricsLog.FileName)

                do
                    use log = MetricsLog.Resume(path, 7L)
                    Expect.equal log.KeptLines 0 "nothing kept"
                    Expect.equal log.LastStep (Nullable()) "empty"
                    log.Append(8L, values [ "loss", 1.0 ])

                Expect.equal (stepsOf path) [ 8L ] "the new line"
                File.AppendAllText(path, "\n\r\n")
                Expect.equal (MetricsLog.Read path).Count 1 "blank lines skipped")
        }

        test "Value names 'step' and 'wall_time' are refused" {
            withTempDir (fun dir ->
                use log = MetricsLog.StartNew(Path.Combine(dir, MetricsLog.FileName))

                for name in [ "step"; "wall_time" ] do
                    let message =
                        errorMessage<LlgbmException>(fun () -> log.Append(1L, values [ name, 1.0 ]))

                    Expect.stringContains message name "names the value")
        }
    ]
