module LLGBM.Tests.TaskDirectoryTests

open System
open System.IO
open System.Text
open System.Text.Json
open Expecto
open LLGBM.Tests.TestModels
open FsCheck.FSharp
open LLGBM.Tasks
open LLGBM.Tests.SafetensorsTests.Kit

/// An example as plain F# values (records holding lists compare lists by reference).
let view (e: TaskExample) =
    e.Prompt,
    e.Answer,
    (if isNull e.Choices then
         None
     else
         Some(List.ofSeq e.Choices))

/// A spec as plain F# values.
let specView (s: TaskSpec) =
    s.Name,
    s.Domain,
    s.Kind,
    s.Extraction,
    Option.ofObj s.Instruction,
    Option.ofObj s.Description,
    List.ofSeq s.Components

let private write (dir: string) (name: string) (text: string) =
    let path = Path.Combine(dir, name)
    File.WriteAllText(path, text, UTF8Encoding(false))
    path

let private mcSpec =
    """{"name": "arc-easy", "domain": "commonsense", "kind": "multiple_choice", "extraction": "choice_letter","""
    + """ "instruction": "Answer the question.", "components": [], "metric": "choice_accuracy", "version": 3}"""

let private genSpec =
    """{"name": "add-3", "domain": "arithmetic", "kind": "generation"}"""

/// A task directory with the given task.json and splits (test.jsonl empty unless given).
let private makeTask (dir: string) (spec: string) (train: string) (test: string) =
    write dir "task.json" spec |> ignore
    write dir "train.jsonl" train |> ignore
    write dir "test.jsonl" test |> ignore

let private formatError (load: unit -> 'a) =
    thrown<TaskFormatException>(load >> ignore)

[<Tests>]
let load =
    testList "TaskDirectory.Load" [
        test "reads a multiple-choice task, ignoring unknown keys, with blank lines at the end" {
            withTempDir (fun dir ->
                let train =
                    "{\"prompt\": \"Question: Which is a fruit?\\nAnswer:\", \"choices\": [\"rock\", \"apple\"], \"answer\": \"B\", \"id\": 7}\n"
                    + "{\"id\": \"x\", \"answer\": \"A\", \"choices\": [\"yes\", \"no\", \"maybe\"], \"prompt\": \"Is 2 even?\"}\n"
                    + "\n   \n"

                makeTask
                    dir
                    mcSpec
                    train
                    "{\"prompt\": \"Ünï \\\"q\\\"\", \"choices\": [\"a\", \"b\"], \"answer\": \"A\"}"

                let task = TaskDirectory.Load dir

                Expect.equal
                    (specView task.Spec)
                    ("arc-easy",
                     "commonsense",
                     TaskKind.MultipleChoice,
                     AnswerExtraction.ChoiceLetter,
                     Some "Answer the question.",
                     None,
                     [])
                    "spec"

                Expect.equal
                    (task.Train |> Seq.map view |> List.ofSeq)
                    [
                        "Question: Which is a fruit?\nAnswer:", "B", Some [ "rock"; "apple" ]
                        "Is 2 even?", "A", Some [ "yes"; "no"; "maybe" ]
                    ]
                    "train"

                Expect.equal (task.Test |> Seq.map view |> List.ofSeq) [ "Ünï \"q\"", "A", Some [ "a"; "b" ] ] "test"
                Expect.equal task.Train[0].AnswerIndex (Nullable 1) "answer index"
                Expect.equal task.Spec.Metric "choice_accuracy" "metric")
        }
        test "reads a generation task with default extraction and empty test split" {
            withTempDir (fun dir ->
                makeTask
                    dir
                    genSpec
                    "{\"prompt\": \"4\", \"answer\": \"7\"}\r\n{\"prompt\": \"10\", \"answer\": \"13\"}"
                    ""

                let task = TaskDirectory.Load dir

                Expect.equal
                    (specView task.Spec)
                    ("add-3", "arithmetic", TaskKind.Generation, AnswerExtraction.FirstLine, None, None, [])
                    "spec"

                Expect.equal
                    (task.Train |> Seq.map view |> List.ofSeq)
                    [ "4", "7", None; "10", "13", None ]
                    "train (CRLF line ends)"

                Expect.isEmpty task.Test "no test examples")
        }
        test "rejects malformed lines, naming the file, the line and what was expected" {
            let cases = [
                // kind, bad line, message fragment
                TaskKind.Generation, "{\"prompt\": \"x\", \"answer\": ", "not JSON"
                TaskKind.Generation, "[\"x\", \"y\"]", "expected a JSON object, found a list"
                TaskKind.Generation, "{\"answer\": \"y\"}", "missing \"prompt\""
                TaskKind.Generation, "{\"prompt\": \"x\"}", "missing \"answer\""
                TaskKind.Generation,
                "{\"prompt\": 3, \"answer\": \"y\"}",
                "\"prompt\" must be a string, found a number (3)"
                TaskKind.Generation, "{\"prompt\": \"  \", \"answer\": \"y\"}", "empty \"prompt\""
                TaskKind.Generation, "{\"prompt\": \"x\", \"answer\": \"\"}", "empty \"answer\""
                TaskKind.Generation, "{\"prompt\": \"x\", \"answer\": 4}", "\"answer\" must be a string"
                TaskKind.Generation,
                "{\"prompt\": \"x\", \"choices\": [\"a\", \"b\"], \"answer\": \"A\"}",
                "\"choices\" in a generation task"
                TaskKind.MultipleChoice, "{\"prompt\": \"x\", \"answer\": \"A\"}", "missing \"choices\""
                TaskKind.MultipleChoice,
                "{\"prompt\": \"x\", \"choices\": \"a, b\", \"answer\": \"A\"}",
                "\"choices\" must be a list of strings"
                TaskKind.MultipleChoice,
                "{\"prompt\": \"x\", \"choices\": [\"a\", 2], \"answer\": \"A\"}",
                "\"choices\" must be a list of strings"
                TaskKind.MultipleChoice,
                "{\"prompt\": \"x\", \"choices\": [\"a\"], \"answer\": \"A\"}",
                "2 to 26 choices, found 1"
                TaskKind.MultipleChoice,
                "{\"prompt\": \"x\", \"choices\": [\"a\", \"\"], \"answer\": \"A\"}",
                "choice B is empty"
                TaskKind.MultipleChoice,
                "{\"prompt\": \"x\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"answer\": \"E\"}",
                "A to D for 4 choices, found \"E\""
                TaskKind.MultipleChoice,
                "{\"prompt\": \"x\", \"choices\": [\"a\", \"b\"], \"answer\": \"b\"}",
                "found \"b\""
                TaskKind.MultipleChoice,
                "{\"prompt\": \"x\", \"choices\": [\"a\", \"b\"], \"answer\": \"AB\"}",
                "found \"AB\""
            ]

            for (kind, line, fragment) in cases do
                withTempDir (fun dir ->
                    let good =
                        if kind = TaskKind.Generation then
                            "{\"prompt\": \"ok\", \"answer\": \"ok\"}"
                        else
                            "{\"prompt\": \"ok\", \"choices\": [\"a\", \"b\"], \"answer\": \"A\"}"

                    makeTask
                        dir
                        (if kind = TaskKind.Generation then genSpec else mcSpec)
                        (good + "\n" + line + "\n")
                        ""

                    let path = Path.Combine(dir, "train.jsonl")
                    let e = formatError (fun () -> TaskDirectory.Load dir)
                    Expect.equal e.File path $"names the file ({line})"
                    Expect.equal e.Line (Nullable 2) $"names the line ({line})"
                    Expect.stringContains e.Message $"'{path}' line 2: " "message names file and line"
                    Expect.stringContains e.Message fragment $"says what was expected ({line})")
        }
        test "rejects a blank line between examples, naming the blank line" {
            withTempDir (fun dir ->
                makeTask
                    dir
                    genSpec
                    "{\"prompt\": \"a\", \"answer\": \"b\"}\n{\"prompt\": \"a\", \"answer\": \"b\"}\n\n{\"prompt\": \"c\", \"answer\": \"d\"}\n"
                    ""

                let e = formatError (fun () -> TaskDirectory.Load dir)
                Expect.equal e.Line (Nullable 3) "the blank line"
                Expect.stringContains e.Message "blank line" "says why")
        }
        test "rejects a malformed test split too" {
            withTempDir (fun dir ->
                makeTask dir genSpec "{\"prompt\": \"a\", \"answer\": \"b\"}\n" "not json\n"
                let e = formatError (fun () -> TaskDirectory.Load dir)
                Expect.equal e.File (Path.Combine(dir, "test.jsonl")) "test.jsonl"
                Expect.equal e.Line (Nullable 1) "line 1")
        }
        test "rejects missing or malformed task.json fields" {
            let cases = [
                "{\"domain\": \"d\", \"kind\": \"generation\"}", "\"name\""
                "{\"name\": \"n\", \"kind\": \"generation\"}", "\"domain\""
                "{\"name\": \"n\", \"domain\": \"d\"}", "\"kind\""
                "{\"name\": \"n\", \"domain\": \"d\", \"kind\": \"mc\"}",
                "\"generation\" or \"multiple_choice\", found \"mc\""
                "{\"name\": \"n\", \"domain\": \"d\", \"kind\": \"generation\", \"extraction\": \"regex\"}",
                "\"final_number\", found \"regex\""
                "{\"name\": \"n\", \"domain\": \"d\", \"kind\": \"generation\", \"components\": \"a\"}",
                "\"components\""
                "{\"name\": 5, \"domain\": \"d\", \"kind\": \"generation\"}", "\"name\" must be a string"
                "[1, 2]", "expected a JSON object"
                "{\"name\": ", "not valid JSON"
            ]

            for (spec, fragment) in cases do
                withTempDir (fun dir ->
                    makeTask dir spec "" ""
                    let e = formatError (fun () -> TaskDirectory.Load dir)
                    Expect.equal e.File (Path.Combine(dir, "task.json")) $"names task.json ({spec})"
                    Expect.stringContains e.Message fragment $"says what is wrong ({spec})")
        }
        test "names the missing file or directory" {
            withTempDir (fun dir ->
                let missing = Path.Combine(dir, "nope")
                let e = formatError (fun () -> TaskDirectory.Load missing)
                Expect.stringContains e.Message missing "the directory"
                write dir "task.json" genSpec |> ignore
                write dir "train.jsonl" "" |> ignore
                let e = formatError (fun () -> TaskDirectory.Load dir)
                Expect.equal e.File (Path.Combine(dir, "test.jsonl")) "the missing split"
                Expect.stringContains e.Message "no such file" "says so")
        }
        test "reads the extraction names" {
            for (name, extraction) in
                [
                    "first_line", AnswerExtraction.FirstLine
                    "choice_letter", AnswerExtraction.ChoiceLetter
                    "yes_no", AnswerExtraction.YesNo
                    "final_number", AnswerExtraction.FinalNumber
                ] do
                withTempDir (fun dir ->
                    makeTask
                        dir
                        $"{{\"name\": \"n\", \"domain\": \"d\", \"kind\": \"generation\", \"extraction\": \"{name}\"}}"
                        ""
                        ""

                    Expect.equal (TaskDirectory.Load dir).Spec.Extraction extraction name)
        }
    ]

[<Tests>]
let save =
    testList "TaskDirectory.Save" [
        test "writes one compact JSON object per line, choices before the answer, non-ASCII unescaped" {
            withTempDir (fun dir ->
                let spec =
                    TaskSpec(
                        Name = "mix",
                        Domain = "commonsense",
                        Kind = TaskKind.MultipleChoice,
                        Extraction = AnswerExtraction.ChoiceLetter,
                        Components = [| "a"; "b" |]
                    )

                let train = [|
                    TaskExample(Prompt = "say \"hi\"\nnow é", Answer = "B", Choices = [| "x"; "y\\z" |])
                    TaskExample(Prompt = "日本", Answer = "A", Choices = [| "1"; "2"; "3" |])
                |]

                TaskDirectory.Save(Path.Combine(dir, "mix"), TaskData(spec, train, [||]))

                let expected =
                    "{\"prompt\":\"say \\\"hi\\\"\\nnow é\",\"choices\":[\"x\",\"y\\\\z\"],\"answer\":\"B\"}\n"
                    + "{\"prompt\":\"日本\",\"choices\":[\"1\",\"2\",\"3\"],\"answer\":\"A\"}\n"

                Expect.equal (File.ReadAllText(Path.Combine(dir, "mix", "train.jsonl"))) expected "train.jsonl"
                Expect.equal (File.ReadAllText(Path.Combine(dir, "mix", "test.jsonl"))) "" "empty test.jsonl"

                use doc =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "mix", "task.json")))

                let root = doc.RootElement
                let str (key: string) = root.GetProperty(key).GetString()
                Expect.equal (str "name") "mix" "name"
                Expect.equal (str "domain") "commonsense" "domain"
                Expect.equal (str "kind") "multiple_choice" "kind"
                Expect.equal (str "extraction") "choice_letter" "extraction"
                Expect.equal (str "metric") "choice_accuracy" "metric"

                Expect.equal
                    [ for c in root.GetProperty("components").EnumerateArray() -> c.GetString() ]
                    [ "a"; "b" ]
                    "components"

                Expect.isFalse (root.TryGetProperty "instruction" |> fst) "no instruction key when there is none")
        }
        testPropertyWithConfig (Generators.config 40) "Load reads back what Save wrote"
        <| Prop.forAll (Arb.fromGen Generators.taskData) (fun task ->
            withTempDir (fun dir ->
                TaskDirectory.Save(dir, task)
                let back = TaskDirectory.Load dir
                Expect.equal (specView back.Spec) (specView task.Spec) "spec"

                Expect.equal
                    (back.Train |> Seq.map view |> List.ofSeq)
                    (task.Train |> Seq.map view |> List.ofSeq)
                    "train"

                Expect.equal
                    (back.Test |> Seq.map view |> List.ofSeq)
                    (task.Test |> Seq.map view |> List.ofSeq)
                    "test"))
        test "replaces an existing task and leaves no temporary files" {
            withTempDir (fun dir ->
                let spec = TaskSpec(Name = "t", Domain = "d", Kind = TaskKind.Generation)
                let one = TaskExample(Prompt = "p", Answer = "a")
                TaskDirectory.Save(dir, TaskData(spec, [| one; one |], [| one |]))
                TaskDirectory.Save(dir, TaskData(spec, [| one |], [||]))
                let back = TaskDirectory.Load dir
                Expect.equal (back.Train.Count, back.Test.Count) (1, 0) "the new contents"

                Expect.equal
                    (Directory.GetFiles dir |> Array.map Path.GetFileName |> Array.sort)
                    [| "task.json"; "test.jsonl"; "train.jsonl" |]
                    "no temporary files")
        }
        test "refuses an invalid example before writing anything, naming the file and line it would have had" {
            withTempDir (fun dir ->
                let target = Path.Combine(dir, "t")
                let spec = TaskSpec(Name = "t", Domain = "d", Kind = TaskKind.MultipleChoice)

                let train = [|
                    TaskExample(Prompt = "p", Answer = "A", Choices = [| "x"; "y" |])
                    TaskExample(Prompt = "p", Answer = "C", Choices = [| "x"; "y" |])
                |]

                let e =
                    formatError (fun () -> TaskDirectory.Save(target, TaskData(spec, train, [||])))

                Expect.equal e.File (Path.Combine(target, "train.jsonl")) "the file"
                Expect.equal e.Line (Nullable 2) "the line"
                Expect.stringContains e.Message "A to B" "what was expected"
                Expect.isFalse (Directory.Exists target) "nothing written")
        }
        test "refuses a generation example with choices" {
            withTempDir (fun dir ->
                let spec = TaskSpec(Name = "t", Domain = "d", Kind = TaskKind.Generation)
                let bad = TaskExample(Prompt = "p", Answer = "A", Choices = [| "x"; "y" |])

                let e =
                    formatError (fun () -> TaskDirectory.Save(dir, TaskData(spec, [||], [| bad |])))

                Expect.equal e.File (Path.Combine(dir, "test.jsonl")) "the file"
                Expect.stringContains e.Message "generation task" "why")
        }
    ]
