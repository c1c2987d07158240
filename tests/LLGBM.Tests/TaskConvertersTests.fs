module LLGBM.Tests.TaskConvertersTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open LLGBM.Tests.TestModels
open Parquet.Schema
open Parquet.Serialization
open LLGBM
open LLGBM.Tasks
open LLGBM.Tasks.Import
open LLGBM.Tests.SafetensorsTests.Kit
open LLGBM.Tests.TaskDirectoryTests

/// The hand-written sample exports in tests/fixtures/datasets (copied next to the test assembly).
let fixture (name: string) =
    Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets", name)

let private convert (format: string) (path: string) =
    TaskImport.Convert(DatasetConverters.Get format, path)
    |> Seq.map view
    |> List.ofSeq

let private mc (prompt: string) (answer: string) (choices: string list) = prompt, answer, Some choices

let private formatError (load: unit -> 'a) =
    thrown<TaskFormatException>(load >> ignore)

/// Writes hand-written rows as a Parquet file with the given schema (Parquet.Net's untyped writer).
let private writeParquet (path: string) (schema: ParquetSchema) (rows: (string * obj) list list) =
    let data =
        ResizeArray<IDictionary<string, obj>>(
            rows
            |> List.map (fun row -> Dictionary<string, obj>(dict row) :> IDictionary<string, obj>)
        )

    use stream = File.Create path

    ParquetSerializer.SerializeUntypedAsync(data, schema, stream).GetAwaiter().GetResult()

// Expected examples, written out by hand from the fixture rows and the templates documented in the converters.

let private arcEasyExpected = [
    mc
        ("Question: Which form of energy does a green plant store when it makes sugar?\nA. chemical energy\nB. sound energy\nC. nuclear energy\n"
         + "D. electrical energy\nAnswer:")
        "A"
        [ "chemical energy"; "sound energy"; "nuclear energy"; "electrical energy" ]
    mc
        "Question: What is the main source of energy for the water cycle?\nA. wind\nB. the Sun\nC. the Moon\nD. volcanoes\nAnswer:"
        "B"
        [ "wind"; "the Sun"; "the Moon"; "volcanoes" ]
    mc
        "Question: Which tool is best for measuring the mass of a rock?\nA. a ruler\nB. a thermometer\nC. a balance\nAnswer:"
        "C"
        [ "a ruler"; "a thermometer"; "a balance" ]
    mc "Question: Which of these is a mammal?\nA. shark\nB. frog\nC. eagle\nD. whale\nE. lizard\nAnswer:" "D" [
        "shark"
        "frog"
        "eagle"
        "whale"
        "lizard"
    ]
]

let private piqaExpected = [
    mc "Question: How do I keep cut apples from turning brown?\nAnswer:" "A" [
        "Brush the slices with lemon juice."
        "Brush the slices with olive oil and leave them in the sun."
    ]
    mc "Question: To open a jar with a stuck lid,\nAnswer:" "B" [
        "put the jar in the freezer for an hour."
        "run the lid under hot water, then twist it."
    ]
    mc "Question: Make a paper airplane fly farther.\nAnswer:" "A" [
        "Fold the wings evenly and throw it gently forward."
        "Crumple it into a ball and throw it hard."
    ]
]

let private arcSchema =
    ParquetSchema(
        DataField<string>("id"),
        DataField<string>("question"),
        StructField(
            "choices",
            ListField("text", DataField<string>("element")),
            ListField("label", DataField<string>("element"))
        ),
        DataField<string>("answerKey")
    )

/// A list of strings as Parquet.Net's untyped writer takes list items (nullable character memory).
let private stringList (items: string list) =
    box (List<Nullable<ReadOnlyMemory<char>>>([ for s in items -> Nullable(s.AsMemory()) ]))

let private arcRow (id: string) (question: string) (texts: string list) (labels: string list) (key: string) = [
    "id", box id
    "question", box question
    "choices", box (Dictionary<string, obj>(dict [ "text", stringList texts; "label", stringList labels ]))
    "answerKey", box key
]

let private piqaSchema =
    ParquetSchema(
        DataField<string>("goal"),
        DataField<string>("sol1"),
        DataField<string>("sol2"),
        DataField<int64>("label")
    )

let private piqaRow (goal: string) (sol1: string) (sol2: string) (label: int64) = [
    "goal", box goal
    "sol1", box sol1
    "sol2", box sol2
    "label", box label
]

[<Tests>]
let converters =
    testList "TaskConverters" [
        test "ARC-Easy: listed choices, letter and number labels, 3 to 5 choices" {
            Expect.equal (convert "arc-easy" (fixture "arc-easy.jsonl")) arcEasyExpected "examples"
        }
        test "ARC-Challenge: the same layout" {
            Expect.equal
                (convert "arc-challenge" (fixture "arc-challenge.jsonl"))
                [
                    mc
                        ("Question: A student drops a ball from the same height onto different surfaces. Which variable is the student testing?\n"
                         + "A. the height of the drop\nB. the type of surface\nC. the mass of the ball\nD. the color of the ball\nAnswer:")
                        "B"
                        [
                            "the height of the drop"
                            "the type of surface"
                            "the mass of the ball"
                            "the color of the ball"
                        ]
                    mc
                        ("Question: Which change would most likely increase the rate of a chemical reaction?\nA. lowering the temperature\n"
                         + "B. using larger pieces\nC. raising the temperature\nD. adding water\nAnswer:")
                        "C"
                        [
                            "lowering the temperature"
                            "using larger pieces"
                            "raising the temperature"
                            "adding water"
                        ]
                    mc
                        ("Question: Why does the Moon appear to change shape during a month?\nA. Earth's shadow covers it\n"
                         + "B. we see different amounts of its lit half\nC. clouds block part of it\nD. it rotates faster than Earth\nAnswer:")
                        "B"
                        [
                            "Earth's shadow covers it"
                            "we see different amounts of its lit half"
                            "clouds block part of it"
                            "it rotates faster than Earth"
                        ]
                ]
                "examples"
        }
        test "BoolQ: passage, question with one question mark, choices no/yes" {
            Expect.equal
                (convert "boolq" (fixture "boolq.jsonl"))
                [
                    mc
                        ("The Great Wall of China is not visible to the naked eye from the Moon; astronauts have reported that no human structure can be "
                         + "seen from that distance.\nQuestion: is the great wall of china visible from the moon?\nAnswer:")
                        "A"
                        [ "no"; "yes" ]
                    mc
                        ("Penguins live almost exclusively in the Southern Hemisphere; only the Galapagos penguin is found slightly north of the equator.\n"
                         + "Question: do penguins live in the northern hemisphere?\nAnswer:")
                        "A"
                        [ "no"; "yes" ]
                    mc
                        ("Botanically, a tomato is a fruit: a berry that develops from the ovary of the flowering plant.\n"
                         + "Question: is a tomato a fruit?\nAnswer:")
                        "B"
                        [ "no"; "yes" ]
                ]
                "examples"
        }
        test "BoolQ: the SuperGLUE label 0/1 when there is no answer field" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "boolq.jsonl")

                File.WriteAllText(
                    path,
                    "{\"question\": \"is it\", \"passage\": \"P.\", \"idx\": 0, \"label\": 1}\n"
                    + "{\"question\": \"is it\", \"passage\": \"P.\", \"idx\": 1, \"label\": 0}\n"
                )

                Expect.equal
                    (convert "boolq" path |> List.map (fun (_, a, _) -> a))
                    [ "B"; "A" ]
                    "1 is yes (B), 0 is no (A)")
        }
        test "GSM8K: the question, and the final number after #### without separators" {
            Expect.equal
                (convert "gsm8k" (fixture "gsm8k.jsonl"))
                [
                    "Question: Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?\nAnswer:",
                    "10",
                    None
                    "Question: A bike costs $300 and a helmet costs $45. How much do 4 bikes and 4 helmets cost?\nAnswer:",
                    "1380",
                    None
                    "Question: The temperature was 5 degrees and fell by 12 degrees. What is the temperature now?\nAnswer:",
                    "-7",
                    None
                ]
                "examples"
        }
        test "HellaSwag: activity label and context, WikiHow markers cleaned, string or integer labels" {
            Expect.equal
                (convert "hellaswag" (fixture "hellaswag.jsonl"))
                [
                    mc "Roof shingle removal: A man is sitting on a roof. He" "D" [
                        "is using wrap to wrap a pair of skis."
                        "is ripping level tiles off."
                        "is holding a rubik's cube."
                        "starts pulling up roofing on a roof."
                    ]
                    mc "Making a cake: A woman pours flour into a bowl." "A" [
                        "She cracks two eggs into the flour."
                        "She throws the bowl into the pool."
                        "She paints the bowl blue."
                        "She puts the bowl on her head."
                    ]
                    mc
                        "Home and Garden: How to clean a cast iron pan. Rinse the pan with hot water. Do not use soap,"
                        "A"
                        [
                            "as it strips the seasoning.. Dry the pan right away."
                            "because the pan will melt."
                            "as the water is already soapy."
                            "and put the pan in the freezer."
                        ]
                ]
                "examples"
        }
        test "PIQA: goal as the question, the two solutions as choices" {
            Expect.equal (convert "piqa" (fixture "piqa.jsonl")) piqaExpected "examples"
        }
        test "WinoGrande: the sentence up to the blank, each option with the rest of the sentence" {
            Expect.equal
                (convert "winogrande" (fixture "winogrande.jsonl"))
                [
                    mc "Sarah was a much better surgeon than Maria so" "A" [
                        "Sarah always got the harder cases."
                        "Maria always got the harder cases."
                    ]
                    mc "The trophy doesn't fit into the brown suitcase because the" "A" [
                        "trophy is too large."
                        "suitcase is too large."
                    ]
                    mc "Kevin lent his notes to Brian because" "B" [
                        "Kevin had missed the lecture."
                        "Brian had missed the lecture."
                    ]
                ]
                "examples"
        }
        test "WinoGrande: a blank opening the sentence gets the fixed prompt" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "w.jsonl")

                File.WriteAllText(
                    path,
                    "{\"sentence\": \"_ was late because the bus broke down, unlike Amy.\", \"option1\": \"Ben\", \"option2\": \"Amy\", \"answer\": 1}\n"
                )

                Expect.equal
                    (convert "winogrande" path)
                    [
                        mc "Complete the sentence:" "A" [
                            "Ben was late because the bus broke down, unlike Amy."
                            "Amy was late because the bus broke down, unlike Amy."
                        ]
                    ]
                    "examples")
        }
        test "OpenBookQA: question stem with listed choices" {
            Expect.equal
                (convert "openbookqa" (fixture "openbookqa.jsonl"))
                [
                    mc
                        ("Question: The sun is responsible for\nA. puppies learning new tricks\nB. children growing up and getting old\n"
                         + "C. flowers wilting in a vase\nD. plants sprouting, blooming and wilting\nAnswer:")
                        "D"
                        [
                            "puppies learning new tricks"
                            "children growing up and getting old"
                            "flowers wilting in a vase"
                            "plants sprouting, blooming and wilting"
                        ]
                    mc
                        ("Question: When food is reduced in the stomach\nA. the mind needs time to digest\nB. take a second to digest what I said\n"
                         + "C. nutrients are being deconstructed\nD. reader's digest is a body of works\nAnswer:")
                        "C"
                        [
                            "the mind needs time to digest"
                            "take a second to digest what I said"
                            "nutrients are being deconstructed"
                            "reader's digest is a body of works"
                        ]
                    mc
                        "Question: A magnet will stick to\nA. a wooden table\nB. an iron nail\nC. a glass cup\nD. a plastic spoon\nAnswer:"
                        "B"
                        [ "a wooden table"; "an iron nail"; "a glass cup"; "a plastic spoon" ]
                ]
                "examples"
        }
        test "Parquet: ARC rows with the nested choices struct convert like the JSONL export" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "arc.parquet")

                writeParquet path arcSchema [
                    arcRow
                        "Mercury_7001"
                        "Which form of energy does a green plant store when it makes sugar?"
                        [ "chemical energy"; "sound energy"; "nuclear energy"; "electrical energy" ]
                        [ "A"; "B"; "C"; "D" ]
                        "A"
                    arcRow
                        "Mercury_7002"
                        "What is the main source of energy for the water cycle?"
                        [ "wind"; "the Sun"; "the Moon"; "volcanoes" ]
                        [ "1"; "2"; "3"; "4" ]
                        "2"
                    arcRow
                        "Mercury_7003"
                        "Which tool is best for measuring the mass of a rock?"
                        [ "a ruler"; "a thermometer"; "a balance" ]
                        [ "A"; "B"; "C" ]
                        "C"
                    arcRow
                        "Mercury_7004"
                        "  Which of these is a mammal?  "
                        [ "shark"; "frog"; "eagle"; "whale"; "lizard" ]
                        [ "A"; "B"; "C"; "D"; "E" ]
                        "D"
                ]

                Expect.equal (convert "arc-easy" path) arcEasyExpected "examples")
        }
        test "Parquet: PIQA rows with an integer label column" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "piqa.parquet")

                writeParquet path piqaSchema [
                    piqaRow
                        "How do I keep cut apples from turning brown?"
                        "Brush the slices with lemon juice."
                        "Brush the slices with olive oil and leave them in the sun."
                        0L
                    piqaRow
                        "To open a jar with a stuck lid,"
                        "put the jar in the freezer for an hour."
                        "run the lid under hot water, then twist it."
                        1L
                    piqaRow
                        "Make a paper airplane fly farther."
                        "Fold the wings evenly and throw it gently forward."
                        "Crumple it into a ball and throw it hard."
                        0L
                ]

                Expect.equal (convert "piqa" path) piqaExpected "examples")
        }
        test "Parquet: a malformed row is named by its row number" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "piqa.parquet")
                writeParquet path piqaSchema [ piqaRow "g" "a" "b" 1L; piqaRow "g" "a" "b" 2L ]
                let e = formatError (fun () -> convert "piqa" path)
                Expect.equal (e.File, e.Line) (path, Nullable 2) "file and row"
                Expect.stringContains e.Message $"'{path}' row 2: \"label\" is 2, expected 0 to 1" "message")
        }
        test "Parquet: a file that is not Parquet is named" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "x.parquet")
                File.WriteAllText(path, "{\"goal\": \"not parquet\"}")
                let e = formatError (fun () -> convert "piqa" path)
                Expect.stringContains e.Message "not a readable Parquet file" "message"
                Expect.stringContains e.Message path "file")
        }
        test "malformed rows: the file, the line and what was expected" {
            let good = [
                "arc-easy",
                "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"A\"}"
                "boolq", "{\"question\": \"q\", \"passage\": \"p\", \"answer\": true}"
                "gsm8k", "{\"question\": \"q\", \"answer\": \"x\\n#### 1\"}"
                "hellaswag", "{\"ctx\": \"c\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], \"label\": \"0\"}"
                "piqa", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}"
                "winogrande",
                "{\"sentence\": \"A or B so _ won.\", \"option1\": \"A\", \"option2\": \"B\", \"answer\": \"1\"}"
                "openbookqa",
                "{\"question_stem\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"B\"}"
            ]

            let cases = [
                "arc-easy",
                "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"E\"}",
                "\"answerKey\" is \"E\", which is not one of the choice labels (A, B)"
                "arc-easy",
                "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\", \"C\"]}, \"answerKey\": \"A\"}",
                "\"choices.text\" has 2 items but \"choices.label\" has 3"
                "arc-easy",
                "{\"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"A\"}",
                "missing \"question\" (fields present: choices, answerKey)"
                "arc-easy",
                "{\"question\": \"q\", \"choices\": {\"text\": [\"a\"], \"label\": [\"A\"]}, \"answerKey\": \"A\"}",
                "2 to 26 choices, found 1"
                "arc-easy",
                "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answerKey\": \"A\"}",
                "missing \"choices.text\""
                "boolq",
                "{\"question\": \"q\", \"passage\": \"p\", \"answer\": \"maybe\"}",
                "\"answer\" must be true or false"
                "boolq", "{\"question\": \"q\", \"answer\": true}", "missing \"passage\""
                "gsm8k", "{\"question\": \"q\", \"answer\": \"it is 5\"}", "no \"#### {final number}\" line"
                "gsm8k", "{\"question\": \"q\", \"answer\": \"x\\n#### about 5\"}", "found \"#### about 5\""
                "gsm8k", "{\"question\": \"\", \"answer\": \"x\\n#### 5\"}", "\"question\" is empty"
                "hellaswag",
                "{\"ctx\": \"c\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], \"label\": \"\"}",
                "unlabelled rows"
                "hellaswag",
                "{\"ctx\": \"c\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], \"label\": 4}",
                "\"label\" is 4, expected 0 to 3 for 4 choices"
                "hellaswag",
                "{\"ctx\": \"c\", \"endings\": \"a\", \"label\": 0}",
                "\"endings\" must be a list of strings"
                "hellaswag", "{\"ctx\": \"c\", \"endings\": [\"a\", \"\"], \"label\": 0}", "\"endings\" item 2 is empty"
                "piqa",
                "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": -1}",
                "\"label\" is -1, expected 0 to 1"
                "piqa",
                "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0.5}",
                "\"label\" must be an integer"
                "winogrande",
                "{\"sentence\": \"_ and _\", \"option1\": \"A\", \"option2\": \"B\", \"answer\": \"1\"}",
                "exactly one blank \"_\", found 2"
                "winogrande",
                "{\"sentence\": \"A or B so _ won.\", \"option1\": \"A\", \"option2\": \"B\", \"answer\": \"3\"}",
                "\"answer\" is 3, expected 1 to 2"
                "openbookqa",
                "{\"question_stem\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}}",
                "missing \"answerKey\""
                "piqa", "{\"goal\": \"g\", \"sol1\": ", "not JSON"
                "piqa", "[1, 2]", "expected a JSON object"
            ]

            for (format, line, fragment) in cases do
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, format + ".jsonl")
                    File.WriteAllText(path, (good |> List.find (fst >> (=) format) |> snd) + "\n" + line + "\n")
                    let e = formatError (fun () -> convert format path)
                    Expect.equal (e.File, e.Line) (path, Nullable 2) $"file and line ({format}: {line})"
                    Expect.stringContains e.Message $"'{path}' line 2: " "message names them"
                    Expect.stringContains e.Message fragment $"says what was expected ({format}: {line})")
        }
        test "the good rows of the malformed-row test convert" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "w.jsonl")

                File.WriteAllText(
                    path,
                    "\n{\"sentence\": \"A or B so _ won.\", \"option1\": \"A\", \"option2\": \"B\", \"answer\": \"1\"}\n\n"
                )

                Expect.equal
                    (convert "winogrande" path)
                    [ mc "A or B so" "A" [ "A won."; "B won." ] ]
                    "blank lines skipped")
        }
    ]

[<Tests>]
let import =
    testList "TaskImport" [
        test "GSM8K: a math generation task with final-number extraction, test split from --test-input" {
            let task = TaskImport.Import("gsm8k", fixture "gsm8k.jsonl", fixture "gsm8k.jsonl")

            Expect.equal
                (task.Spec.Name, task.Spec.Domain, task.Spec.Kind, task.Spec.Extraction)
                ("gsm8k", "math", TaskKind.Generation, AnswerExtraction.FinalNumber)
                "spec"

            Expect.equal (task.Train.Count, task.Test.Count) (3, 3) "splits"
            Expect.stringContains task.Spec.Description "openai/gsm8k" "names the source"
            Expect.equal task.Spec.Metric "exact_match" "metric"
        }
        test
            "defaults: commonsense multiple choice named after the format; overrides for name and domain; no test split" {
            for format in
                [
                    "arc-easy"
                    "arc-challenge"
                    "boolq"
                    "hellaswag"
                    "piqa"
                    "winogrande"
                    "openbookqa"
                ] do
                let task = TaskImport.Import(format, fixture (format + ".jsonl"))

                Expect.equal
                    (task.Spec.Name, task.Spec.Domain, task.Spec.Kind, task.Spec.Extraction)
                    (format, "commonsense", TaskKind.MultipleChoice, AnswerExtraction.ChoiceLetter)
                    format

                Expect.isEmpty task.Test $"{format}: no test split"
                Expect.isNotNull task.Spec.Instruction $"{format}: an instruction"

            let task =
                TaskImport.Import("ARC-Easy", fixture "arc-easy.jsonl", name = "arc-e-small", domain = "science")

            Expect.equal
                (task.Spec.Name, task.Spec.Domain)
                ("arc-e-small", "science")
                "overrides (format case-insensitive)"
        }
        test "an unknown format names those that exist" {
            let e =
                try
                    TaskImport.Import("mmlu", fixture "arc-easy.jsonl") |> ignore
                    failtest "expected an error"
                with :? LlgbmException as e ->
                    e

            Expect.stringContains
                e.Message
                "'mmlu'; expected one of arc-easy, arc-challenge, boolq, gsm8k, hellaswag, openbookqa, piqa, winogrande"
                "lists formats"
        }
        test "a missing or empty export is named" {
            withTempDir (fun dir ->
                let missing = Path.Combine(dir, "none.jsonl")
                let e = formatError (fun () -> TaskImport.Import("piqa", missing))
                Expect.equal e.File missing "missing file"
                let empty = Path.Combine(dir, "empty.jsonl")
                File.WriteAllText(empty, "\n")

                let e =
                    formatError (fun () -> TaskImport.Import("piqa", fixture "piqa.jsonl", empty))

                Expect.equal e.File empty "empty test file"
                Expect.stringContains e.Message "no records" "says so")
        }
    ]
