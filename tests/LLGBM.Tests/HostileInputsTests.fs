/// Crafted hostile and broken files: names that would escape their directory, text that is not UTF-8, settings that
/// cannot work. Each must end in one clean error naming the file and field, with nothing written where it should not be.
module LLGBM.Tests.HostileInputsTests

open System
open System.IO
open System.Text
open Expecto
open LLGBM
open LLGBM.Cli.Commands
open LLGBM.Generators
open LLGBM.Tasks
open LLGBM.Teachers
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels
open LLGBM.Experiments

let private utf8 (text: string) = Encoding.UTF8.GetBytes text

/// Expects exit code 2 and exactly one line on standard error, "error: …", holding every part.
let private expectOneLineError (code: int, _: string, err: string) (parts: string list) =
    Expect.equal code CommandAction.InputError $"exit code 2 for an input error ({err})"
    let lines = err.Trim().Split('\n')
    Expect.equal lines.Length 1 $"one line: {err}"
    Expect.stringStarts lines[0] "error: " "an error line"

    for part in parts do
        Expect.stringContains lines[0] part "the error names it"

let private expectLlgbmError (f: unit -> 'a) (parts: string list) =
    let message = errorMessage<LlgbmException>(fun () -> f () |> ignore)
    Expect.isFalse (message.Contains '\n') $"one line: {message}"

    for part in parts do
        Expect.stringContains message part "the error names it"

/// A generation task directory `dir` whose task.json carries `name`, with two examples per split.
let private writeTask (dir: string) (name: string) (testLines: int) =
    Directory.CreateDirectory dir |> ignore

    File.WriteAllText(
        Path.Combine(dir, TaskDirectory.SpecFileName),
        $"{{\"name\": {Text.Json.JsonSerializer.Serialize name}, \"domain\": \"d\", \"kind\": \"generation\", \"instruction\": \"Echo.\"}}"
    )

    let line i =
        $"{{\"prompt\": \"p{i}\", \"answer\": \"a{i}\"}}\n"

    File.WriteAllText(Path.Combine(dir, TaskDirectory.TrainFileName), String.Join("", [ for i in 1..2 -> line i ]))

    File.WriteAllText(
        Path.Combine(dir, TaskDirectory.TestFileName),
        String.Join("", [ for i in 1..testLines -> line i ])
    )

let private tinyBase =
    lazy
        (let root = TestPools.tempRoot "llgbm-hostile"
         let baseDir = Path.Combine(root, "base")
         let (code, _, err) = llgbm [ "base"; "init"; "--preset"; "tiny"; "--out"; baseDir ]
         Expect.equal code 0 err
         baseDir)

[<Tests>]
let pathNames =
    testList "PathNames" [
        test "refuses the empty name, . and .., separators, control characters and names over 255 bytes" {
            let refused = [
                ""
                "."
                ".."
                "../../evil"
                "a/b"
                "/abs"
                "a\\b"
                "nul\u0000x"
                "new\nline"
                "tab\tx"
                "del\u007F"
                String('x', 256)
                String('é', 128)
            ]

            for name in refused do
                Expect.isSome (Option.ofObj (PathNames.Problem name)) $"{PathNames.Quote name} is refused"

            // 'é' is two bytes of UTF-8: 127 of them are 254 bytes, within the limit.
            let accepted = [
                "arith-add-3"
                "mix-upper+reverse"
                "...x"
                ".hidden"
                "a..b"
                "Ünïcode"
                String('x', 255)
                String('é', 127)
            ]

            for name in accepted do
                Expect.isNull (PathNames.Problem name) $"{name} is accepted"
        }

        test "a relative adapter path stays inside its directory: each component is a name" {
            Expect.equal
                (PathNames.ValidateRelative("upper/step-00010", "adapter", "m.json"))
                "upper/step-00010"
                "accepted"

            for path in [ "../x/step-1"; "upper/../../x"; "/etc/passwd"; "upper//step"; "" ] do
                expectLlgbmError (fun () -> PathNames.ValidateRelative(path, "adapter", "m.json")) [
                    "m.json"
                    "adapter"
                ]
        }

        test "the error quotes a control character instead of breaking the line" {
            expectLlgbmError (fun () -> PathNames.Validate("a\nb", "\"name\"", "x.json")) [
                "x.json"
                "\"name\""
                "\"a\\u000Ab\""
                "U+000A"
            ]
        }
    ]

[<Tests>]
let paths =
    testSequenced
    <| testList "Hostile paths" [
        test "teachers train refuses a task.json naming itself ../../evil and writes nothing outside --out" {
            let root = TestPools.tempRoot "llgbm-evil"
            let suite = Path.Combine(root, "suite")
            writeTask (Path.Combine(suite, "evil")) "../../evil" 2
            let out = Path.Combine(root, "pools", "pool")
            let spec = Path.Combine(suite, "evil", TaskDirectory.SpecFileName)

            let result =
                llgbm [
                    "teachers"
                    "train"
                    "--base"
                    tinyBase.Force()
                    "--tasks"
                    suite
                    "--out"
                    out
                ]

            expectOneLineError result [ spec; "\"name\""; "../../evil"; "'/'" ]
            Expect.isFalse (Directory.Exists(Path.GetFullPath(Path.Combine(out, "../../evil")))) "nothing outside --out"
        }

        test "TaskDirectory refuses a task name or component that is not a directory name, on reading and on saving" {
            let root = TestPools.tempRoot "llgbm-names"

            for name in [ ".."; "."; "a/b"; "x\\y"; "bell\u0007" ] do
                let dir = Path.Combine(root, Guid.NewGuid().ToString "N")
                writeTask dir name 1

                expectLlgbmError (fun () -> TaskDirectory.Load dir) [
                    Path.Combine(dir, TaskDirectory.SpecFileName)
                    "\"name\""
                ]

            let dir = Path.Combine(root, "mix")
            writeTask dir "mix" 1
            let spec = Path.Combine(dir, TaskDirectory.SpecFileName)
            File.WriteAllText(spec, File.ReadAllText(spec).Replace("}", ", \"components\": [\"upper\", \"../x\"]}"))
            expectLlgbmError (fun () -> TaskDirectory.Load dir) [ spec; "\"components\""; "../x" ]

            let example = TaskExample(Prompt = "p", Answer = "a")

            let task =
                TaskData(
                    TaskSpec(Name = "../up", Domain = "d", Kind = TaskKind.Generation),
                    [| example |],
                    [| example |]
                )

            let target = Path.Combine(root, "saved")
            expectLlgbmError (fun () -> TaskDirectory.Save(target, task)) [ "task name"; "../up" ]
            Expect.isFalse (Directory.Exists target) "nothing written"
        }

        test "tasks mix refuses --name, --first and --second that are not directory names" {
            let root = TestPools.tempRoot "llgbm-mix"
            let suite = Path.Combine(root, "suite")
            writeTask (Path.Combine(suite, "a")) "a" 2
            writeTask (Path.Combine(suite, "b")) "b" 2
            let out = Path.Combine(root, "out", "mixtures")

            let mix extra =
                llgbm ([ "tasks"; "mix"; "--tasks"; suite; "--out"; out ] @ extra)

            expectOneLineError (mix [ "--first"; "a"; "--second"; "b"; "--name"; "../../escaped" ]) [
                "mixture's name"
                "../../escaped"
            ]

            Expect.isFalse (Directory.Exists(Path.Combine(root, "escaped"))) "nothing outside --out"
            expectOneLineError (mix [ "--first"; "../suite/a"; "--second"; "b" ]) [ "--first"; "../suite/a" ]
            expectOneLineError (mix [ "--first"; "a"; "--second"; ".." ]) [ "--second"; "\"..\"" ]
            let (code, _, err) = mix [ "--first"; "a"; "--second"; "b" ]
            Expect.equal code 0 err
            Expect.isTrue (TaskDirectory.IsTaskDirectory(Path.Combine(out, "mix-a+b"))) "a valid mixture is written"
        }

        test
            "a generator config named .. is refused naming the file and field, and no run is written into the runs root" {
            let root = TestPools.tempRoot "llgbm-dotdot"
            let config = Path.Combine(root, "dotdot.json")
            File.WriteAllText(config, "{\"name\": \"..\", \"steps\": 2}")
            let runs = Path.Combine(root, "runs")
            let result = llgbm [ "generator"; "train"; "--config"; config; "--runs"; runs ]
            expectOneLineError result [ config; "name"; "\"..\"" ]
            Expect.isFalse (File.Exists(Path.Combine(runs, GeneratorRun.ConfigFile))) "no config.json in the runs root"

            Expect.isFalse
                (File.Exists(Path.Combine(runs, "generators", GeneratorRun.ConfigFile)))
                "nor in runs/generators"

            expectLlgbmError (fun () -> (GeneratorConfig(Name = "a/b")).Validate()) [ "name"; "a/b"; "'/'" ]
        }

        test "a teacher pool manifest whose adapter path leaves the pool is refused naming the manifest" {
            let root = TestPools.tempRoot "llgbm-manifest"

            let manifest =
                """{"teachers": [{"task": "upper", "settings": "k", "base_model": "h", "training_seconds": 1,
                   "checkpoints": [{"task": "upper", "domain": "d", "step": 4, "seed": 0, "train_loss": 1, "test_accuracy": 0,
                   "test_count": 2, "adapter": "../../outside/step-00004", "adapter_sha256": "x", "config_sha256": "y"}]}]}"""

            File.WriteAllText(Path.Combine(root, TeacherPool.ManifestName), manifest)

            expectLlgbmError (fun () -> TeacherPool.ReadManifest root) [
                Path.Combine(root, TeacherPool.ManifestName)
                "upper at step 4"
                "../../outside/step-00004"
            ]
        }
    ]

/// `text` as UTF-8 with the bytes `bad` inserted after its first `at` characters; returns (bytes, byte offset of `bad`).
let private withBadBytes (text: string) (at: int) (bad: byte array) =
    let before = utf8 text[.. at - 1]
    Array.concat [ before; bad; utf8 text[at..] ], before.Length

let private writeBytes (path: string) (bytes: byte array) =
    Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
    File.WriteAllBytes(path, bytes)
    path

[<Tests>]
let utf8Files =
    testList "Invalid UTF-8" [
        test "TextFiles names the file and the byte offset of the first bad byte, counting a byte order mark" {
            let root = TestPools.tempRoot "llgbm-utf8"
            // 'é' and 'ö' are two bytes each, so the character index and the byte offset differ.
            let text = "héllo wörld\nsecond line"
            let bytes, offset = withBadBytes text 14 [| 0xFFuy |]
            Expect.equal offset 16 "14 characters, two of them two bytes long"
            let path = writeBytes (Path.Combine(root, "a.txt")) bytes
            expectLlgbmError (fun () -> TextFiles.ReadAllText path) [ path; "byte offset 16"; "0xFF" ]

            let bom =
                writeBytes (Path.Combine(root, "bom.txt")) (Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] bytes)

            expectLlgbmError (fun () -> TextFiles.ReadAllText bom) [ bom; "byte offset 19" ]
            // A lead byte without its continuation (0xC3 then '('), and a truncated sequence at the end of the file.
            let truncated =
                writeBytes (Path.Combine(root, "c.txt")) (Array.append (utf8 "ab") [| 0xC3uy; 0x28uy |])

            expectLlgbmError (fun () -> TextFiles.ReadAllText truncated) [ "byte offset 2"; "0xC3" ]

            let good =
                writeBytes (Path.Combine(root, "good.txt")) (Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] (utf8 text))

            Expect.equal (TextFiles.ReadAllText good) text "valid UTF-8 reads as before, without the byte order mark"
            Expect.sequenceEqual (TextFiles.ReadAllLines good) [ "héllo wörld"; "second line" ] "lines"
        }

        test "task files: a bad byte in train.jsonl, test.jsonl or task.json is refused with the file and offset" {
            let root = TestPools.tempRoot "llgbm-utf8-task"

            for file in
                [
                    TaskDirectory.TrainFileName
                    TaskDirectory.TestFileName
                    TaskDirectory.SpecFileName
                ] do
                let dir = Path.Combine(root, Guid.NewGuid().ToString "N")
                writeTask dir "t" 2
                let path = Path.Combine(dir, file)
                let text = File.ReadAllText path
                let at = text.IndexOf "\"" + 1
                let bytes, offset = withBadBytes text at [| 0xC0uy; 0xAFuy |]
                writeBytes path bytes |> ignore
                expectLlgbmError (fun () -> TaskDirectory.Load dir) [ path; $"byte offset {offset}" ]
        }

        test "tokenize --file, tasks import and a prompts file refuse invalid UTF-8 with the file and offset" {
            let root = TestPools.tempRoot "llgbm-utf8-cli"

            let text =
                "{\"goal\": \"Open a jar\", \"sol1\": \"twist\", \"sol2\": \"freeze\", \"label\": 0}\n"

            let bytes, offset = withBadBytes text 15 [| 0xFEuy |]
            let file = writeBytes (Path.Combine(root, "in.jsonl")) bytes

            expectOneLineError (llgbm [ "tokenize"; "--model"; tinyBase.Force(); "--file"; file ]) [
                file
                $"byte offset {offset}"
                "0xFE"
            ]

            let out = Path.Combine(root, "piqa")

            expectOneLineError (llgbm [ "tasks"; "import"; "--format"; "piqa"; "--input"; file; "--out"; out ]) [
                file
                $"byte offset {offset}"
            ]

            Expect.isFalse (Directory.Exists out) "no task written"

            let prompts =
                writeBytes
                    (Path.Combine(root, "prompts.jsonl"))
                    (Array.append (utf8 "[\"a\", \"") [| 0x80uy; 0x22uy; 0x5Duy |])

            expectLlgbmError (fun () -> GenerateCommand.ReadCondition(prompts, PromptBatchMode.PromptsOnly)) [
                prompts
                "byte offset 7"
            ]
        }

        test "probe files refuse invalid UTF-8" {
            let root = TestPools.tempRoot "llgbm-utf8-probes"

            let probes =
                writeBytes
                    (Path.Combine(root, "probes.json"))
                    (Array.append (utf8 "[\"The ") [| 0xEDuy; 0xA0uy; 0x80uy; 0x22uy; 0x5Duy |])

            expectLlgbmError (fun () -> LLGBM.Delta.ProbeSet.Load probes) [ probes; "byte offset 6" ]
            expectLlgbmError (fun () -> LLGBM.Delta.MeaningProbeSet.Load probes) [ probes; "byte offset 6" ]
        }
    ]

[<Tests>]
let oddities =
    testSequenced
    <| testList "Silent oddities" [
        test "eval of a task without test examples is an error naming the task and its test.jsonl" {
            let root = TestPools.tempRoot "llgbm-empty-test"
            let tasks = Path.Combine(root, "tasks")
            writeTask (Path.Combine(tasks, "full")) "full" 2
            writeTask (Path.Combine(tasks, "nothing-here")) "empty" 0

            expectOneLineError (llgbm [ "eval"; "--model"; tinyBase.Force(); "--tasks"; tasks; "--format"; "bare" ]) [
                Path.Combine(tasks, "nothing-here", TaskDirectory.TestFileName)
                "task empty"
                "no test examples"
            ]

            let (code, out, err) =
                llgbm [
                    "eval"
                    "--model"
                    tinyBase.Force()
                    "--tasks"
                    tasks
                    "--task"
                    "full"
                    "--format"
                    "bare"
                    "--json"
                ]

            Expect.equal code 0 err
            Expect.stringContains out "\"n\": 2" "the task with test examples is evaluated on both"
        }

        test "condition_prompts 1 is refused naming the config file and field; 2 is accepted" {
            let root = TestPools.tempRoot "llgbm-k1"
            let config = Path.Combine(root, "k1.json")
            File.WriteAllText(config, "{\"name\": \"k1\", \"condition_prompts\": 1, \"condition_pool\": 4}")
            expectLlgbmError (fun () -> GeneratorConfig.Load config) [ config; "condition_prompts (1)"; "at least 2" ]
            File.WriteAllText(config, "{\"name\": \"k2\", \"condition_prompts\": 2, \"condition_pool\": 4}")
            Expect.equal (GeneratorConfig.Load config).ConditionPrompts 2 "K = 2 is accepted"
        }

        test "base pretrain --preset micro is refused: its 64 ids cannot hold the byte-level tokenizer's" {
            let root = TestPools.tempRoot "llgbm-micro"
            let out = Path.Combine(root, "micro")
            let tokenizer = LLGBM.Text.ByteLevelTokenizer()
            Expect.isGreaterThan tokenizer.VocabSize 64 "the byte tokenizer needs more than 64 ids"

            expectOneLineError (llgbm [ "base"; "pretrain"; "--preset"; "micro"; "--out"; out; "--steps"; "1" ]) [
                "micro"
                "64"
                string tokenizer.VocabSize
                "tiny"
            ]

            Expect.isFalse (Directory.Exists out) "nothing written"
        }
    ]
