module LLGBM.Tests.RobustnessTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Generators
open LLGBM.Lora
open LLGBM.Tasks
open LLGBM.Tasks.Synthetic
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels
open LLGBM.Experiments

/// FNV-1a over the UTF-16 code units, written out independently of the library.
let private fnv (text: string) =
    let mutable h = 14695981039346656037UL

    for c in text do
        h <- (h ^^^ uint64 c) * 1099511628211UL

    h

/// A small suite drawn in memory (every task, 60 training examples).
let private suite =
    lazy (SyntheticSuite.Build(SyntheticSuiteSettings(TrainCount = 60, TestCount = 4)))

/// ΔW of every module of adapter i, as flat float arrays in module order, by explicit sums.
let private naiveDeltaW (set: LoraSet) (i: int64) = [|
    for KeyValue(_, m) in set.Modules |> Seq.sortBy (fun p -> p.Key) do
        let a = m.A.[i].to_type(torch.ScalarType.Float64)
        let b = m.B.[i].to_type(torch.ScalarType.Float64)
        let rank, inF = int a.shape[0], int a.shape[1]
        let outF = int b.shape[0]
        let av = a.data<float>().ToArray()
        let bv = b.data<float>().ToArray()

        for o in 0 .. outF - 1 do
            for n in 0 .. inF - 1 do
                let mutable s = 0.0

                for k in 0 .. rank - 1 do
                    s <- s + bv[o * rank + k] * av[k * inF + n]

                yield m.Scale * s
|]

let private cosine (x: float[]) (y: float[]) =
    let dot = Array.fold2 (fun acc a b -> acc + a * b) 0.0 x y

    dot
    / (sqrt (Array.sumBy (fun a -> a * a) x) * sqrt (Array.sumBy (fun a -> a * a) y))

let private batchedSet (seed: int64) (count: int64) (scales: float list) =
    let g = new torch.Generator(uint64 seed)

    let modules =
        readOnlyDict [
            for (j, scale) in List.indexed scales ->
                let rank, inF, outF = 2L + int64 j, 5L + int64 j, 4L + 2L * int64 j
                let a = torch.randn ([| count; rank; inF |], generator = g)
                let b = torch.randn ([| count; outF; rank |], generator = g)
                $"m{j}", LoraModule.LowRank(a, b, scale)
        ]

    new LoraSet(modules, true)

/// Character statistics as a stand-in encoder (24 features).
let private encoding = TestPools.characterEncoding

/// A tiny base, a small suite and two-checkpoint teachers for upper, add-2, add-1 (training) and reverse (held out).
let private fixture =
    lazy
        (let root = TestPools.tempRoot "llgbm-robust"
         let baseDir, suiteDir = TestPools.tinyBaseAndSuite root

         let pool =
             TestPools.trainPool root baseDir suiteDir 6 [| "upper"; "add-2"; "add-1"; "reverse" |]

         root, GeneratorInputs(baseDir, suiteDir, pool, Path.Combine(root, "deltas")))

let private small (name: string) (changes: (string * JsonNode) list) =
    let config =
        GeneratorConfig(
            Name = name,
            Seed = 5L,
            HiddenSize = 32,
            EmbeddingSize = 8,
            ConditionPrompts = 4,
            ConditionPool = 16,
            Probes = 2,
            Steps = 6,
            AdaptersPerStep = 4,
            Microbatch = 2,
            LearningRate = 1e-2,
            WarmupSteps = 0,
            LogEvery = 2,
            CheckpointEvery = 3,
            EvalEvery = 0,
            EvalBatches = 2,
            EvalLimit = 4,
            InDomainTasks = 1,
            TrainTasks = [| "upper"; "add-2"; "add-1" |],
            TestTasks = [| "reverse" |]
        )

    let node = JsonNode.Parse(config.ToJson()).AsObject()

    for (key, value) in changes do
        node[key] <- value

    System.Text.Json.JsonSerializer
        .Deserialize<GeneratorConfig>(node.ToJsonString(), GeneratorConfig.JsonOptions)
        .Validate()

[<Tests>]
let rewriterTests =
    testList "SyntheticPromptRewriter" [
        test "paraphrases and layouts of hand-written prompts" {
            Expect.equal (SyntheticPromptRewriter.Paraphrase("047 =", 0)) "047 equals" "arithmetic 0"
            Expect.equal (SyntheticPromptRewriter.Paraphrase("047 =", 1)) "what is 047 ?" "arithmetic 1"
            Expect.equal (SyntheticPromptRewriter.Paraphrase("kqzm ->", 1)) "turn kqzm into" "strings 1"
            Expect.equal (SyntheticPromptRewriter.Paraphrase("code bhad :", 2)) "the code bhad reads" "cipher 2"

            Expect.equal
                (SyntheticPromptRewriter.Paraphrase("words: red cat pear ?", 3))
                "items red cat pear :"
                "keywords 3"

            Expect.equal
                (SyntheticPromptRewriter.Paraphrase("pick 34 71 12 55 :", 1))
                "which of 34 71 12 55 ?"
                "comparison 1"

            Expect.equal (SyntheticPromptRewriter.Reformat("047 =", "050", 0)) "INPUT: 047 | OUTPUT: 050" "layout 0"
            Expect.equal (SyntheticPromptRewriter.Reformat("kqzm ->", "mzqk", 1)) "mzqk <= kqzm" "layout 1"
            Expect.equal (SyntheticPromptRewriter.Reformat("code bhad :", "cdbe", 2)) "[CODE] bhad => cdbe" "layout 2"

            Expect.equal
                (SyntheticPromptRewriter.Reformat("words: red cat pear ?", null, 3))
                "Q: red cat pear\nA:"
                "layout 3, prompt only"

            Expect.equal
                (SyntheticPromptRewriter.Reformat("pick 34 71 12 55 :", null, 2))
                "[NUMBERS] 34 71 12 55 =>"
                "layout 2, prompt only"
        }

        test "the variant is FNV-1a of the prompt and Text applies it" {
            for prompt in
                [
                    "047 ="
                    "kqzm ->"
                    "code bhad :"
                    "words: red cat pear ?"
                    "pick 34 71 12 55 :"
                ] do
                let phrasing = int (fnv prompt % 4UL)
                let layout = int (fnv prompt % 4UL)
                Expect.equal (SyntheticPromptRewriter.VariantOf(prompt, 4)) phrasing prompt

                Expect.equal
                    (SyntheticPromptRewriter.Text(prompt, "ans", PromptTransform.Paraphrased))
                    (SyntheticPromptRewriter.Paraphrase(prompt, phrasing) + " ans")
                    $"paraphrased {prompt}"

                Expect.equal
                    (SyntheticPromptRewriter.Text(prompt, "ans", PromptTransform.Reformatted))
                    (SyntheticPromptRewriter.Reformat(prompt, "ans", layout))
                    $"reformatted {prompt}"

                Expect.equal
                    (SyntheticPromptRewriter.Text(prompt, "ans", PromptTransform.Original))
                    (prompt + " ans")
                    "original"

                Expect.equal
                    (SyntheticPromptRewriter.Text(prompt, null, PromptTransform.Original))
                    prompt
                    "original, prompt only"
        }

        test "over the whole suite: every rewrite differs, keeps the content and the answer, and uses every variant" {
            for task in suite.Force() do
                let used = HashSet<string * int>()

                for example in task.Train do
                    let answer = PromptBatches.AnswerText example
                    let original = example.Prompt + " " + answer
                    let struct (domain, content) = SyntheticPromptRewriter.Parse example.Prompt

                    if task.Spec.Domain <> "mixture" then
                        Expect.equal domain task.Spec.Domain $"{task.Spec.Name}: the domain of \"{example.Prompt}\""

                    for transform in [ PromptTransform.Paraphrased; PromptTransform.Reformatted ] do
                        let text = SyntheticPromptRewriter.Text(example.Prompt, answer, transform)
                        Expect.notEqual text original $"{task.Spec.Name} {transform} changes \"{original}\""
                        Expect.stringContains text content "the content is kept"
                        Expect.stringContains text answer "the answer is kept"

                        Expect.equal
                            (SyntheticPromptRewriter.Text(example.Prompt, answer, transform))
                            text
                            "deterministic"

                    used.Add(("p", int (fnv example.Prompt % 4UL))) |> ignore
                    used.Add(("r", int (fnv example.Prompt % 4UL))) |> ignore

                Expect.equal used.Count 8 $"{task.Spec.Name}: every phrasing and layout occurs"
        }

        test "prompts of no template and variants out of range are refused" {
            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> SyntheticPromptRewriter.Parse "Question: why?" |> ignore))
                "\"Question: why?\" follows none"
                "unknown template"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> SyntheticPromptRewriter.Paraphrase("047 =", 4) |> ignore))
                "phrasing 4 does not exist"
                "phrasing out of range"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> SyntheticPromptRewriter.Reformat("047 =", "1", -1) |> ignore))
                "layout -1 does not exist"
                "layout out of range"
        }
    ]

[<Tests>]
let lowDataTests =
    testList "LowDataTasks" [
        test "half and a quarter of the default split's training tasks, by hand" {
            let domainOf =
                SyntheticSuite.Tasks() |> Seq.map (fun t -> t.Name, t.Spec.Domain) |> dict

            let train =
                SyntheticSuite.Splits()
                |> Seq.find (fun s -> s.Name = "default")
                |> fun s -> s.Train

            let pairs = [| for n in train -> struct (n, domainOf[n]) |]

            let names f =
                LowDataTasks.SubsetNames(pairs, f) |> List.ofSeq
            // arithmetic add-1 add-2 add-3 add-5 add-6 double; strings reverse upper double-first;
            // cipher shift-1 shift-2 shift-4 shift-5; keywords has-animal has-fruit has-color; comparison largest smallest even
            Expect.equal
                (names 0.5)
                [
                    "add-1"
                    "add-3"
                    "add-6"
                    "reverse"
                    "upper"
                    "shift-1"
                    "shift-4"
                    "has-animal"
                    "has-fruit"
                    "largest"
                    "smallest"
                ]
                "half: 3 of 6, 2 of 3, 2 of 4, 2 of 3, 2 of 3"

            Expect.equal
                (names 0.25)
                [ "add-1"; "add-5"; "reverse"; "shift-1"; "has-animal"; "largest" ]
                "a quarter: 2 of 6, then one per domain"

            Expect.equal (names 1.0) (List.ofSeq train) "all"

            Expect.equal
                (names 0.01)
                [ "add-1"; "reverse"; "shift-1"; "has-animal"; "largest" ]
                "one per domain at least"

            for f in [ 0.0; -0.5; 1.5; nan ] do
                Expect.stringContains
                    (errorMessage<LlgbmException>(fun () -> names f |> ignore))
                    "must be in (0, 1]"
                    $"fraction {f}"
        }

        test "the config validates train_fraction and teacher_checkpoints" {
            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> small "x" [ "train_fraction", JsonValue.Create 0.0 ] |> ignore))
                "train_fraction (0) must be in (0, 1]"
                "fraction 0"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () ->
                    small "x" [ "teacher_checkpoints", JsonValue.Create -1 ] |> ignore))
                "teacher_checkpoints (-1) cannot be negative"
                "negative checkpoints"
        }
    ]

[<Tests>]
let adapterCosineTests =
    testList "PairedAdapterCosine" [
        test "matches the cosine of explicit ΔW, adapter by adapter" {
            use x = batchedSet 1L 3L [ 2.0; 0.5 ]
            use y = batchedSet 2L 3L [ 2.0; 0.5 ]
            let got = PairedAdapterCosine.Of(x, y)
            Expect.equal got.Length 3 "one per adapter"

            for i in 0..2 do
                let expected = cosine (naiveDeltaW x (int64 i)) (naiveDeltaW y (int64 i))
                Expect.floatClose Accuracy.high got[i] expected $"adapter {i}"

            for c in PairedAdapterCosine.Of(x, x) do
                Expect.floatClose Accuracy.high c 1.0 "an adapter with itself"
        }

        test "sets of other modules or counts are refused" {
            use x = batchedSet 1L 3L [ 1.0; 1.0 ]
            use y = batchedSet 2L 2L [ 1.0; 1.0 ]
            use z = batchedSet 3L 3L [ 1.0 ]

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> PairedAdapterCosine.Of(x, y) |> ignore))
                "same number of adapters"
                "counts"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> PairedAdapterCosine.Of(x, z) |> ignore))
                "module m1 is in the first set only"
                "modules"
        }
    ]

[<Tests>]
let runTests =
    testSequenced
    <| testList "Robustness and low data" [
        test
            "a low-data run keeps the chosen tasks and the last teacher checkpoint, and evaluates the unseen training task" {
            let root, inputs = fixture.Force()
            let run = Path.Combine(root, "low-" + Guid.NewGuid().ToString("N"))

            let config =
                small "low" [
                    "train_fraction", JsonValue.Create 0.5
                    "teacher_checkpoints", JsonValue.Create 1
                ]

            let result = GeneratorRun.Train(config, inputs, run, encoding)
            let info = JsonNode.Parse(File.ReadAllText(Path.Combine(run, GeneratorRun.RunFile)))
            // arithmetic [add-2; add-1] keeps one (the first), strings [upper] keeps upper
            Expect.sequenceEqual
                [ for n in info["train_tasks"].AsArray() -> string n ]
                [ "upper"; "add-2" ]
                "kept tasks"

            Expect.sequenceEqual
                [ for n in info["test_tasks"].AsArray() -> string n ]
                [ "reverse"; "add-1" ]
                "held-out, then the unseen"

            let heldOut =
                result.Results
                |> Seq.filter (fun r -> r.Method = "generated" && r.Split = "held-out")
                |> Seq.map (fun r -> r.Task)
                |> List.ofSeq

            Expect.equal heldOut [ "reverse"; "add-1" ] "the unseen training task is evaluated"

            let manifest = Teachers.TeacherPool.ReadManifest inputs.Teachers

            use data = GeneratorData.Load(inputs, config, encoding.Encode, encoding.Identity)

            for task in [ "upper"; "add-2"; "add-1"; "reverse" ] do
                let steps =
                    manifest
                    |> Seq.find (fun m -> m.Task = task)
                    |> fun m -> m.Checkpoints |> Seq.map (fun c -> c.Step)

                Expect.equal (Seq.length steps) 2 $"{task}: the pool keeps two"

                let kept =
                    data.Teachers.ByTask[task]
                    |> Seq.map (fun i -> data.Teachers.Entries[i].Step)
                    |> List.ofSeq

                Expect.equal kept [ Seq.max steps ] $"{task}: only the last checkpoint"
        }

        test "robustness: the original matches heldout.json, rewritten conditions match adapters generated one by one" {
            let root, inputs = fixture.Force()
            let run = Path.Combine(root, "rob-" + Guid.NewGuid().ToString("N"))
            let config = small "rob" []
            let trained = GeneratorRun.Train(config, inputs, run, encoding)

            let transforms = [|
                PromptTransform.Original
                PromptTransform.Paraphrased
                PromptTransform.Reformatted
            |]

            let results = RobustnessEvaluator.EvaluateRun(run, encoding, transforms)

            let generated =
                results |> Seq.filter (fun r -> r.Method = "generated") |> List.ofSeq

            Expect.equal generated.Length 6 "(reverse held-out, upper in-domain) × 3 transforms"

            for r in generated |> List.filter (fun r -> r.Transform = PromptTransform.Original) do
                let earlier =
                    trained.Results
                    |> Seq.find (fun e -> e.Method = "generated" && e.Task = r.Task && e.Split = r.Split)

                Expect.sequenceEqual r.Accuracies earlier.Accuracies $"{r.Task}: the original accuracies"
                Expect.floatClose Accuracy.medium r.AdapterCosine.Value 1.0 "the original with itself"

            for reference in [ "base"; "oracle"; "mean-teacher" ] do
                let rows = results |> Seq.filter (fun r -> r.Method = reference) |> List.ofSeq
                Expect.equal rows.Length 6 $"{reference} under every transform"

            // the paraphrased adapters, generated one condition at a time from texts built here
            use data = GeneratorData.Load(inputs, config, encoding.Encode, encoding.Identity)

            use generator = GeneratorRun.LoadGenerator(run, data.Model.Config)
            let task = data.TestTasks[0]
            let items = PromptBatches.Sample(task, 16, config.Seed, config.ConditionMode).Items

            let row =
                results
                |> Seq.find (fun r ->
                    r.Method = "generated"
                    && r.Task = "reverse"
                    && r.Transform = PromptTransform.Paraphrased)

            for i in 0..1 do
                let rows =
                    data.Conditions.SampleRows(
                        "reverse",
                        4,
                        GeneratorEvaluator.ConditionSeed(config.Seed, "reverse", i)
                    )

                let texts = [|
                    for j in rows ->
                        let item = items[j]

                        SyntheticPromptRewriter.Paraphrase(item.Prompt, int (fnv item.Prompt % 4UL))
                        + " "
                        + item.Answer
                |]

                use adapter = GeneratorRun.GenerateOne(generator, encoding, texts)

                let accuracy =
                    (GeneratorEvaluator.Accuracy(data, task, adapter, config.EvalLimit, "check")).Accuracy

                Expect.floatClose Accuracy.medium row.Accuracies[i] accuracy $"condition {i}"

            Expect.isLessThan row.AdapterCosine.Value (1.0 - 1e-9) "rewritten texts give another adapter"

            let file = Path.Combine(run, "robustness.json")
            RobustnessEvaluator.Write(file, results)
            let written = JsonNode.Parse(File.ReadAllText file)
            Expect.equal (written["results"].AsArray().Count) results.Count "every result written"
            Expect.equal (string written["results"].[0].["transform"]) "Original" "transforms by name"
        }

        test
            "both plans evaluate robustness on their own generator runs and train low-data runs with the stage's options only" {
            for plan in
                [
                    LLGBM.Cli.Pipeline.PipelinePlan.Full
                    LLGBM.Cli.Pipeline.PipelinePlan.Reduced
                ] do
                for run in plan.Robustness.Runs do
                    Expect.contains plan.Generators run $"{run.Config} seed {run.Seed} is trained by the plan"

                Expect.contains
                    plan.Generators
                    (LLGBM.Cli.Pipeline.PipelineGeneratorRun(plan.Robustness.LowDataConfig, 0L))
                    "the low-data config's full-data run is trained by the plan"

                for options in plan.Robustness.LowData do
                    Expect.equal (options.Count % 2) 0 "option and value pairs"

                    for pair in Seq.chunkBySize 2 options do
                        match pair[0] with
                        | "--train-fraction" ->
                            let f = float pair[1]
                            Expect.isTrue (f > 0.0 && f < 1.0) $"fraction {pair[1]}"
                        | "--teacher-checkpoints" -> Expect.isGreaterThan (int pair[1]) 0 $"checkpoints {pair[1]}"
                        | other -> failtest $"unexpected option {other}"

            Expect.equal
                (LLGBM.Cli.Pipeline.PipelinePlan.Full.Robustness.Runs
                 |> Seq.map (fun r -> r.Config, r.Seed)
                 |> Set.ofSeq)
                (set [
                    for c in [ "dnd-weight"; "multitask"; "delta-only" ] do
                        for s in 0L .. 2L -> c, s
                ])
                "the full plan: the main three with three seeds"
        }

        test "llgbm generator robustness names a missing run" {
            let (code, _, err) =
                llgbm [
                    "generator"
                    "robustness"
                    "--run"
                    "/nonexistent/run"
                    "--out"
                    "/tmp/never.json"
                ]

            Expect.notEqual code 0 "fails"
            Expect.stringContains err "/nonexistent/run" "names the run"
            Expect.isFalse (File.Exists "/tmp/never.json") "nothing written"
        }
    ]
