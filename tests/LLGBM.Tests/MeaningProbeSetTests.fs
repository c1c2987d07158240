module LLGBM.Tests.MeaningProbeSetTests

open System.IO
open Expecto
open LLGBM
open LLGBM.Delta
open LLGBM.Tasks
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

/// A generation task whose example i has prompt "NAME-i" and answer "ai".
let private generation name n =
    let spec = TaskSpec(Name = name, Domain = "test", Kind = TaskKind.Generation)

    let train = [|
        for i in 0 .. n - 1 -> TaskExample(Prompt = sprintf "%s-%d" name i, Answer = sprintf "a%d" i)
    |]

    TaskData(spec, train, [||])

/// A multiple-choice task whose example i has prompt "NAME-i", choices "wrong-i" and "right-i", answer B.
let private choice name n =
    let spec = TaskSpec(Name = name, Domain = "test", Kind = TaskKind.MultipleChoice)

    let train = [|
        for i in 0 .. n - 1 ->
            TaskExample(
                Prompt = sprintf "%s-%d" name i,
                Answer = "B",
                Choices = [| sprintf "wrong-%d" i; sprintf "right-%d" i |]
            )
    |]

    TaskData(spec, train, [||])

let private pairs (set: MeaningProbeSet) = [ for p in set.Probes -> p.Prompt, p.Continuation ]

[<Tests>]
let tests =
    testList "MeaningProbeSet" [
        test "Generic pairs each of the n generic prompts with each of the five fixed continuations" {
            let set = MeaningProbeSet.Generic 2
            Expect.equal set.Name "generic-meaning-2" "name"
            Expect.equal set.Count 10 "2 prompts x 5 continuations"
            let prompts = List.ofSeq (ProbeSet.Generic 2).Texts

            let expected = [
                for p in prompts do
                    for c in
                        [
                            " Sure, here is the response."
                            " Yes."
                            " No."
                            " 42"
                            " I cannot answer that."
                        ] -> p, c
            ]

            Expect.sequenceEqual (pairs set) expected "prompt-major"
        }

        test
            "FromTasks pairs each drawn prompt with its answer after one space (the right choice's text for multiple choice)" {
            let tasks = [ generation "g" 10; choice "m" 10 ]
            let set = MeaningProbeSet.FromTasks(tasks, 3, 7L)
            Expect.equal set.Name "task-answers-3-7" "name"
            Expect.equal set.Count 6 "3 per task"
            // The same prompts as the activation probes drawn with the same arguments.
            Expect.sequenceEqual
                (set.Probes |> Seq.map (fun p -> p.Prompt))
                (ProbeSet.FromTasks(tasks, 3, 7L)).Texts
                "prompts"

            for (prompt, continuation) in pairs set do
                let i = prompt.Substring(prompt.IndexOf '-' + 1)

                let answer = if prompt.StartsWith "g-" then " a" + i else " right-" + i

                Expect.equal continuation answer prompt

            Expect.sequenceEqual (pairs (MeaningProbeSet.FromTasks(tasks, 3, 7L))) (pairs set) "deterministic"
            Expect.throwsT<LlgbmException> (fun () -> MeaningProbeSet.FromTasks([], 3, 7L) |> ignore) "no tasks"
        }

        test "Load reads a JSON list and JSONL of {prompt, continuation}; errors name the file and the item or line" {
            withTempDir (fun dir ->
                let list = Path.Combine(dir, "pairs.json")

                File.WriteAllText(
                    list,
                    """[{"prompt": "047 =", "continuation": " 050"}, {"prompt": "kqzm ->", "continuation": " mzqk", "note": 1}]"""
                )

                let loaded = MeaningProbeSet.Load list
                Expect.equal loaded.Name "pairs" "named after the file"
                Expect.sequenceEqual (pairs loaded) [ "047 =", " 050"; "kqzm ->", " mzqk" ] "list"

                let jsonl = Path.Combine(dir, "pairs.jsonl")

                File.WriteAllText(
                    jsonl,
                    "{\"prompt\": \"a\", \"continuation\": \" b\"}\n\n{\"prompt\": \"c\", \"continuation\": \" d\"}\n"
                )

                Expect.sequenceEqual (pairs (MeaningProbeSet.Load jsonl)) [ "a", " b"; "c", " d" ] "jsonl"

                let cases = [
                    "missing.jsonl",
                    "{\"prompt\": \"a\", \"continuation\": \" b\"}\n{\"prompt\": \"c\"}\n",
                    "missing.jsonl, line 2"
                    "empty.json", """[{"prompt": "a", "continuation": ""}]""", "probe 0"
                    "strings.json", """["a", "b"]""", "expected an object"
                    "broken.jsonl", "{\"prompt\": \"a\", \"continuation\": \" b\"}\n{oops\n", "line 2"
                    "none.jsonl", "\n\n", "no meaning probes"
                ]

                for (name, content, expected) in cases do
                    let file = Path.Combine(dir, name)
                    File.WriteAllText(file, content)

                    let message =
                        errorMessage<LlgbmException>(fun () -> MeaningProbeSet.Load file |> ignore)

                    Expect.stringContains message name $"{name}: names the file"
                    Expect.stringContains message expected $"{name}: says where")

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> MeaningProbeSet.Load "/no/such/pairs.json" |> ignore))
                "not found"
                "missing file"
        }

        test "FromPairs refuses empty sets, prompts and continuations" {
            Expect.throwsT<LlgbmException> (fun () -> MeaningProbeSet.FromPairs("x", []) |> ignore) "empty set"

            Expect.throwsT<LlgbmException>
                (fun () -> MeaningProbeSet.FromPairs("x", [ MeaningProbe("", " a") ]) |> ignore)
                "empty prompt"

            Expect.throwsT<LlgbmException>
                (fun () -> MeaningProbeSet.FromPairs("x", [ MeaningProbe("a", "") ]) |> ignore)
                "empty continuation"
        }
    ]
