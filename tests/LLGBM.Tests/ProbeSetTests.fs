module LLGBM.Tests.ProbeSetTests

open System.IO
open Expecto
open LLGBM
open LLGBM.Delta
open LLGBM.Tasks
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

let private suffix =
    "\n\n### Instruction:\nPlease provide a response. Input:Input.\n\n### Response:"

let private task name n =
    let spec = TaskSpec(Name = name, Domain = "test", Kind = TaskKind.Generation)

    let train = [|
        for i in 0 .. n - 1 -> TaskExample(Prompt = sprintf "%s-%d" name i, Answer = "x")
    |]

    TaskData(spec, train, [||])

[<Tests>]
let tests =
    testList "ProbeSet" [
        test "the five generic probes share the Alpaca instruction and differ only in the preamble" {
            let probes = ProbeSet.Generic 5
            Expect.equal probes.Count 5 "count"
            Expect.equal probes.Name "generic-5" "name"

            for text in probes.Texts do
                Expect.stringEnds text suffix "ends with the instruction block"

            let preambles =
                probes.Texts |> Seq.map (fun t -> t.Substring(0, t.Length - suffix.Length))

            Expect.equal (Seq.distinct preambles |> Seq.length) 5 "distinct preambles"
        }

        test "Generic n is deterministic, extends the first five, and gives 20 distinct probes" {
            for n in [ 1; 5; 10; 20 ] do
                let a = ProbeSet.Generic n
                Expect.equal a.Count n $"count {n}"
                Expect.sequenceEqual a.Texts (ProbeSet.Generic n).Texts $"deterministic {n}"

                Expect.sequenceEqual
                    (Seq.truncate (min n 5) a.Texts)
                    (Seq.truncate (min n 5) (ProbeSet.Generic 5).Texts)
                    "prefix"

            Expect.equal (ProbeSet.Generic 20).Texts.Count 20 "20"
            Expect.equal ((ProbeSet.Generic 20).Texts |> Seq.distinct |> Seq.length) 20 "distinct"
            Expect.throwsT<LlgbmException> (fun () -> ProbeSet.Generic 0 |> ignore) "n = 0"
        }

        test "FromTasks draws perTask distinct training prompts of each task, deterministically" {
            let tasks = [ task "a" 10; task "b" 10 ]
            let probes = ProbeSet.FromTasks(tasks, 3, 7L)
            Expect.equal probes.Count 6 "count"
            let texts = List.ofSeq probes.Texts
            Expect.isTrue (texts |> List.take 3 |> List.forall (fun t -> t.StartsWith "a-")) "first task first"
            Expect.isTrue (texts |> List.skip 3 |> List.forall (fun t -> t.StartsWith "b-")) "then the second"
            Expect.equal (List.distinct texts).Length 6 "distinct"
            Expect.sequenceEqual (ProbeSet.FromTasks(tasks, 3, 7L)).Texts texts "same seed"
        }

        test "Load reads a JSON list and JSONL, with errors naming the file and line" {
            withTempDir (fun dir ->
                let list = Path.Combine(dir, "list.json")
                File.WriteAllText(list, """["one", "two"]""")
                Expect.sequenceEqual (ProbeSet.Load list).Texts [ "one"; "two" ] "list"

                let jsonl = Path.Combine(dir, "probes.jsonl")
                File.WriteAllText(jsonl, "{\"text\": \"a\"}\n\n{\"text\": \"b\", \"x\": 1}\n")
                Expect.sequenceEqual (ProbeSet.Load jsonl).Texts [ "a"; "b" ] "jsonl"

                let bad = Path.Combine(dir, "bad.jsonl")
                File.WriteAllText(bad, "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n")
                let message = errorMessage<LlgbmException>(fun () -> ProbeSet.Load bad |> ignore)
                Expect.stringContains message "bad.jsonl, line 2" "file and line"

                let broken = Path.Combine(dir, "broken.jsonl")
                File.WriteAllText(broken, "{\"text\": \"a\"}\n{oops\n")

                Expect.stringContains
                    (errorMessage<LlgbmException>(fun () -> ProbeSet.Load broken |> ignore))
                    "line 2"
                    "bad json"

                let notStrings = Path.Combine(dir, "ints.json")
                File.WriteAllText(notStrings, "[1, 2]")

                Expect.stringContains
                    (errorMessage<LlgbmException>(fun () -> ProbeSet.Load notStrings |> ignore))
                    "ints.json"
                    "file")
        }

        test "LoadIds reads lists of token ids and rejects other values" {
            withTempDir (fun dir ->
                let file = Path.Combine(dir, "ids.json")
                File.WriteAllText(file, "[[1, 2, 3], [4]]")
                let probes = ProbeSet.LoadIds file
                Expect.isNull probes.Texts "no texts"
                Expect.equal (probes.Tokenize null |> Seq.map List.ofSeq |> List.ofSeq) [ [ 1; 2; 3 ]; [ 4 ] ] "ids"

                for (name, content) in [ "empty.json", "[[1], []]"; "neg.json", "[[1, -2]]"; "flat.json", "[1, 2]" ] do
                    let path = Path.Combine(dir, name)
                    File.WriteAllText(path, content)

                    Expect.stringContains
                        (errorMessage<LlgbmException>(fun () -> ProbeSet.LoadIds path |> ignore))
                        name
                        name)
        }

        test "Tokenize encodes texts with the tokenizer and needs one for texts" {
            let probes = ProbeSet.FromTexts("t", [ "ab"; "c" ])
            let ids = probes.Tokenize(ByteLevelTokenizer()) |> Seq.map List.ofSeq |> List.ofSeq
            Expect.equal ids [ [ 97; 98 ]; [ 99 ] ] "bytes"
            Expect.throwsT<LlgbmException> (fun () -> probes.Tokenize null |> ignore) "no tokenizer"
        }
    ]
