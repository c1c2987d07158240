module LLGBM.Tests.SyntheticSuiteTests

open System
open System.Text.RegularExpressions
open Expecto
open LLGBM.Tasks
open LLGBM.Tasks.Synthetic

let private settings =
    SyntheticSuiteSettings(Seed = 7L, TrainCount = 500, TestCount = 200)

let private suite =
    lazy (SyntheticSuite.Build settings |> Seq.map (fun t -> t.Spec.Name, t) |> Map.ofSeq)

let private task name = suite.Value[name]

let private examples name =
    Seq.append (task name).Train (task name).Test

/// The prompt format of each domain, written from the domain's documentation.
let private formats =
    [
        "arithmetic", @"^\d{3} =$"
        "strings", @"^[a-z]{4} ->$"
        "cipher", @"^code [a-h]{4} :$"
        "keywords", @"^words: [a-z]+ [a-z]+ [a-z]+ \?$"
        "comparison", @"^pick \d\d \d\d \d\d \d\d :$"
    ]
    |> Map.ofList

/// Independent re-computations of each task's answer from its prompt.
let private word (prompt: string) =
    Regex.Match(prompt, "[a-z]{4}(?= (->|:)$)").Value

let private number (prompt: string) = int (prompt.Substring(0, 3))
let private three (n: int) = (n % 1000).ToString("000")

let private shift k (c: char) =
    char ((int c - int 'a' + k) % 8 + int 'a')

let private expectedAnswer (name: string) (prompt: string) : string =
    match name with
    | n when n.StartsWith "add-" -> three (number prompt + int (n.Substring 4))
    | "double" -> three (2 * number prompt)
    | "half" -> three (number prompt / 2)
    | "reverse" -> String(Array.rev ((word prompt).ToCharArray()))
    | "upper" -> (word prompt).ToUpperInvariant()
    | "rotate" -> (word prompt).Substring 1 + string (word prompt).[0]
    | "double-first" -> string (word prompt).[0] + word prompt
    | n when n.StartsWith "shift-" -> String(word prompt |> Seq.map (shift (int (n.Substring 6))) |> Array.ofSeq)
    | "atbash" ->
        String(
            word prompt
            |> Seq.map (fun c -> char (int 'h' - (int c - int 'a')))
            |> Array.ofSeq
        )
    | n -> failwithf "no independent answer for %s" n

let private words (prompt: string) =
    prompt.Substring(7, prompt.Length - 9).Split ' '

let private category (w: string) =
    KeywordTasks.Lexicon
    |> Seq.find (fun kv -> Array.contains w kv.Value)
    |> fun kv -> kv.Key

let private numbers (prompt: string) =
    prompt.Substring(5, prompt.Length - 7).Split ' ' |> Array.map int

[<Tests>]
let tests =
    testList "SyntheticSuite" [
        test "Build: at least five domains of at least four tasks each, plus mixtures" {
            let byDomain =
                SyntheticSuite.Tasks() |> Seq.countBy (fun t -> t.Spec.Domain) |> Map.ofSeq

            Expect.isGreaterThanOrEqual byDomain.Count 5 "domains"

            for KeyValue(domain, count) in byDomain do
                Expect.isGreaterThanOrEqual count 4 domain

            Expect.isGreaterThanOrEqual SyntheticSuite.Mixtures.Count 2 "mixtures"
        }

        test "Build: every task has the asked counts of distinct prompts, train and test disjoint" {
            for KeyValue(name, t) in suite.Value do
                if t.Spec.Domain <> "mixture" then
                    Expect.equal t.Train.Count 500 $"{name} train"
                    Expect.equal t.Test.Count 200 $"{name} test"
                    let all = Seq.append t.Train t.Test |> Seq.map (fun e -> e.Prompt) |> Array.ofSeq
                    Expect.equal (Set.ofArray all).Count all.Length $"{name}: distinct prompts, no test prompt in train"
        }

        test "Build: within a domain tasks share the prompt format, across domains formats differ" {
            for KeyValue(name, t) in suite.Value do
                if t.Spec.Domain <> "mixture" then
                    let pattern = formats[t.Spec.Domain]

                    for e in examples name do
                        Expect.isTrue (Regex.IsMatch(e.Prompt, pattern)) $"{name}: \"{e.Prompt}\" matches {pattern}"

            for KeyValue(d1, p1) in formats do
                for KeyValue(d2, _) in formats do
                    if d1 <> d2 then
                        let sample =
                            (suite.Value.Values |> Seq.find (fun t -> t.Spec.Domain = d2)).Train[0].Prompt

                        Expect.isFalse (Regex.IsMatch(sample, p1)) $"a {d2} prompt is not in the {d1} format"
        }

        test "Build: generation answers equal an independent computation from the prompt" {
            for name in
                [
                    "add-1"
                    "add-4"
                    "add-6"
                    "double"
                    "half"
                    "reverse"
                    "upper"
                    "rotate"
                    "double-first"
                    "shift-1"
                    "shift-3"
                    "shift-5"
                    "atbash"
                ] do
                for e in examples name do
                    Expect.equal e.Answer (expectedAnswer name e.Prompt) $"{name}: {e.Prompt}"
        }

        test "Build: keyword answers follow the lexicons, and yes/no tasks are balanced" {
            for name, cat in [ "has-animal", "animal"; "has-fruit", "fruit"; "has-color", "color" ] do
                let all = examples name |> Array.ofSeq

                for e in all do
                    let has = words e.Prompt |> Array.exists (fun w -> category w = cat)
                    Expect.equal e.Answer (if has then "yes" else "no") $"{name}: {e.Prompt}"

                let yes = all |> Array.filter (fun e -> e.Answer = "yes") |> Array.length |> float
                Expect.isTrue (abs (yes / float all.Length - 0.5) < 0.06) $"{name}: about half yes ({yes}/{all.Length})"

            for e in examples "first-kind" do
                Expect.equal e.Answer (category (words e.Prompt).[0]) e.Prompt
        }

        test "Build: multiple-choice answers pick the right number among the listed choices" {
            let check name (pick: int[] -> int) =
                for e in examples name do
                    let xs = numbers e.Prompt
                    Expect.sequenceEqual e.Choices (xs |> Array.map string) $"{name}: choices are the listed numbers"
                    Expect.equal (Set.ofArray xs).Count 4 "distinct numbers"
                    Expect.equal e.AnswerIndex (Nullable(pick xs)) $"{name}: {e.Prompt} -> {e.Answer}"

            check "largest" (fun xs -> Array.findIndex ((=) (Array.max xs)) xs)
            check "smallest" (fun xs -> Array.findIndex ((=) (Array.min xs)) xs)
            check "closest-50" (fun xs -> Array.findIndex ((=) (xs |> Array.minBy (fun x -> abs (x - 50)))) xs)
            check "even" (fun xs -> Array.findIndex (fun x -> x % 2 = 0) xs)
        }

        test "Build: a mixture holds half of each component's examples" {
            for (a, b) in SyntheticSuite.Mixtures do
                let mix = task (SyntheticSuite.MixtureName(a, b))
                Expect.sequenceEqual mix.Spec.Components [ a; b ] "components"

                let fromA =
                    mix.Train
                    |> Seq.filter (fun e -> (task a).Train |> Seq.contains e)
                    |> Seq.length

                let fromB =
                    mix.Train
                    |> Seq.filter (fun e -> (task b).Train |> Seq.contains e)
                    |> Seq.length

                Expect.equal (fromA + fromB) mix.Train.Count $"{mix.Spec.Name}: every example from a component"
                Expect.equal fromA fromB $"{mix.Spec.Name}: half each"
        }

        test "Build: the same seed gives the same suite, another seed another one" {
            let again =
                SyntheticSuite.Build settings |> Seq.find (fun t -> t.Spec.Name = "reverse")

            Expect.sequenceEqual again.Train (task "reverse").Train "same seed"

            let other =
                SyntheticSuite.Build(SyntheticSuiteSettings(Seed = 8L, TrainCount = 500, TestCount = 200))
                |> Seq.find (fun t -> t.Spec.Name = "reverse")

            Expect.notEqual
                (other.Train |> Seq.map (fun e -> e.Prompt) |> List.ofSeq)
                ((task "reverse").Train |> Seq.map (fun e -> e.Prompt) |> List.ofSeq)
                "other seed"
        }

        test "Splits: leave-one-task-out for every task, held-out family members, and a default split" {
            let splits = SyntheticSuite.Splits() |> Seq.map (fun s -> s.Name, s) |> Map.ofSeq
            let singles = SyntheticSuite.Tasks() |> Seq.map (fun t -> t.Name) |> Set.ofSeq

            for name in singles do
                let s = splits[$"loto-{name}"]
                Expect.sequenceEqual s.Test [ name ] "held out"
                Expect.equal (Set.ofSeq s.Train) (Set.remove name singles) "everything else trains"

            let family = splits["heldout-family"]
            Expect.containsAll family.Test [ "add-4"; "shift-3" ] "held-out members"
            Expect.isTrue (family.Train |> Seq.exists (fun n -> n = "add-3")) "other members train"

            let d = splits["default"]
            let domainsHeldOut = d.Test |> Seq.map (fun n -> (task n).Spec.Domain) |> Set.ofSeq
            Expect.equal domainsHeldOut.Count 5 "one held-out task in every domain"

            for s in splits.Values do
                Expect.isEmpty (Set.intersect (Set.ofSeq s.Train) (Set.ofSeq s.Test)) $"{s.Name}: disjoint"
                Expect.isFalse (s.Train |> Seq.exists (fun n -> n.StartsWith "mix-")) $"{s.Name}: no mixture trains"
        }

        test "SyntheticSuiteFiles: written tasks load back unchanged, with suite.json" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let small = SyntheticSuiteSettings(Seed = 3L, TrainCount = 20, TestCount = 10)
                let written = SyntheticSuiteFiles.Write(root, small)

                let loaded =
                    TaskSuite.LoadAll root |> Seq.map (fun t -> t.Spec.Name, t) |> Map.ofSeq

                Expect.equal loaded.Count written.Count "every task"

                let plain (examples: TaskExample seq) =
                    examples
                    |> Seq.map (fun e -> e.Prompt, e.Answer, (if isNull e.Choices then [] else List.ofSeq e.Choices))
                    |> List.ofSeq

                for t in written do
                    Expect.sequenceEqual (plain loaded[t.Spec.Name].Train) (plain t.Train) t.Spec.Name
                    Expect.equal loaded[t.Spec.Name].Spec.Instruction t.Spec.Instruction "instruction"

                Expect.equal (SyntheticSuiteFiles.ReadSettings root) small "settings round trip"
                Expect.equal (SyntheticSuiteFiles.ReadSplits root).Count (SyntheticSuite.Splits().Count) "splits")
        }

        test "llgbm tasks synth writes the suite and leaves a suite with the same settings alone" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                use out = new System.IO.StringWriter()
                use err = new System.IO.StringWriter()

                let run () =
                    LLGBM.Cli.LlgbmCommand.Run(
                        [|
                            "tasks"
                            "synth"
                            "--out"
                            root
                            "--train"
                            "12"
                            "--test"
                            "6"
                            "--seed"
                            "2"
                        |],
                        out,
                        err
                    )

                Expect.equal (run ()) 0 (err.ToString())

                Expect.equal
                    (TaskSuite.LoadAll root).Count
                    (SyntheticSuite.Tasks().Count + SyntheticSuite.Mixtures.Count)
                    "every task"

                let stamp =
                    System.IO.File.GetLastWriteTimeUtc(System.IO.Path.Combine(root, "suite.json"))

                Expect.equal (run ()) 0 (err.ToString())
                Expect.stringContains (out.ToString()) "already there" "reused"

                Expect.equal
                    (System.IO.File.GetLastWriteTimeUtc(System.IO.Path.Combine(root, "suite.json")))
                    stamp
                    "not rewritten")
        }
    ]
