/// The B2 baseline, retrieve and merge: for a condition (a prompt batch of a held-out task), predict its delta δ̂,
/// retrieve the k teacher adapters whose deltas are nearest to δ̂ (`Retrieve`), merge them on ΔW (average or TIES,
/// `Merge`) and evaluate the merged adapter, applied densely, on the task. Retrieval by behavioural embedding follows
/// Delta Activations (arXiv 2509.04442); retrieve-then-compose follows LoraRetriever (Zhao et al., ACL
/// Findings 2024); the merges are those of `Merge`. Every step is a function argument (`run`), so the prompts → δ̂
/// network of the generator replaces the nearest-condition lookup (`NearestCondition`) without other changes;
/// `runExperiment` wires the steps to run directories for the CLI (`llgbm retrieve-merge`) and scripts.
module LLGBM.Algebra.RetrieveMerge

open System
open System.Collections.Generic
open System.IO
open TorchSharp
open LLGBM
open LLGBM.Delta
open LLGBM.Evaluation
open LLGBM.Model
open LLGBM.Tasks
open LLGBM.Text

/// A teacher adapter of the pool with its delta activation.
type PoolEntry = {
    /// The teacher's task.
    Task: string
    /// The task's domain.
    Domain: string
    /// The training step it was kept at.
    Step: int
    /// Its PEFT adapter directory.
    AdapterDir: string
    /// Its delta activation.
    Delta: float32[]
} with

    override this.ToString() = $"{this.Task}@{this.Step}"

/// The pool of the cached deltas (`DeltaCache.Load`) of the teacher pool in `teachersDir`; the deltas are copied
/// into arrays and the loaded tensors left to the caller.
[<CompiledName("PoolOf")>]
let poolOf (teachersDir: string) (deltas: seq<LoadedDelta>) : PoolEntry[] = [|
    for d in deltas ->
        {
            Task = d.Task
            Domain = d.Domain
            Step = d.Step
            AdapterDir = Path.Combine(teachersDir, d.Adapter)
            Delta = d.Delta.to_type(torch.float32).cpu().data<float32>().ToArray()
        }
|]

/// A predicted delta with a word on where it came from (for reports).
type Prediction = {
    /// δ̂.
    Delta: float32[]
    /// Where it came from, e.g. "nearest condition: add-3 (cos 0.93)".
    Source: string
}

/// The nearest-condition predictor (`NearestCondition`) as a `PromptBatch -> Prediction`, naming the nearest
/// condition's task and its similarity.
[<CompiledName("NearestConditionPredictor")>]
let nearestConditionPredictor
    (embed: PromptBatch -> float32[])
    (library: NearestCondition.Library)
    : PromptBatch -> Prediction =
    fun query ->
        let hit = NearestCondition.nearest embed library query

        {
            Delta = library.Deltas[hit.Index]
            Source = $"nearest condition: {hit.Item.Task} (cos {hit.Score:F3})"
        }

/// What to retrieve and how to merge it.
type Settings = {
    /// The number of teacher adapters retrieved.
    K: int
    /// How deltas are compared.
    Similarity: Retrieve.Similarity
    /// How the retrieved adapters are weighted; the weights fill every merge whose own weights are empty.
    Weighting: Retrieve.Weighting
    /// The merges compared (e.g. average and TIES).
    Merges: Merge.Settings[]
    /// Retrieve at most one adapter per task (its nearest kept checkpoint), so that k adapters come from k tasks;
    /// otherwise the k nearest checkpoints, which are often one task's.
    OnePerTask: bool
} with

    /// k = 3 tasks (one adapter each), cosine, uniform weights; the average and TIES at density 0.2.
    static member Default = {
        K = 3
        Similarity = Retrieve.Cosine
        Weighting = Retrieve.Uniform
        Merges = [| Merge.Settings.Of Merge.Linear; Merge.Settings.Of Merge.Ties |]
        OnePerTask = true
    }

/// One merge's evaluation.
type MergeResult = {
    /// The merge.
    Merge: Merge.Settings
    /// The merged adapter's evaluation on the task.
    Evaluation: TaskEvaluation
}

/// One condition through the pipeline.
type Outcome = {
    /// The condition.
    Condition: PromptBatch
    /// δ̂ and where it came from.
    Predicted: Prediction
    /// The retrieved teachers, nearest first.
    Retrieved: Retrieve.Hit<PoolEntry> list
    /// Their mixing weights.
    Weights: float[]
    /// The sign-conflict rate of the retrieved task vectors (`Metrics.signConflictRate`; 0 for one vector).
    SignConflicts: float
    /// The same after trimming each vector to the TIES density (`signConflictDensity`), as TIES measures it.
    TrimmedSignConflicts: float
    /// Each merge's result, in the order of `Settings.Merges`.
    Results: MergeResult list
}

/// The trim density the trimmed sign-conflict rate uses: the first TIES merge's density, or `Merge.DefaultDensity`
/// when no merge is TIES (DARE's density is a keep probability, not a magnitude trim).
[<CompiledName("SignConflictDensity")>]
let signConflictDensity (settings: Settings) : float =
    settings.Merges
    |> Array.tryFind (fun m -> m.Method = Merge.Ties)
    |> Option.map (fun m -> m.Density)
    |> Option.defaultValue Merge.DefaultDensity

/// The name of a merged adapter, e.g. "ties (density 0.2) of add-3@600 0.333, …".
let private label (merge: Merge.Settings) (hits: Retrieve.Hit<PoolEntry> list) (weights: float[]) =
    let parts =
        List.zip hits (List.ofArray weights)
        |> List.map (fun (h, w) -> $"{h.Item} {w:F3}")

    $"{merge.Describe()} of {Listing.joined (parts)}"

/// Runs one condition through the pipeline: `predict` δ̂, retrieve the `settings.K` pool entries nearest to it (at
/// most one per task with `settings.OnePerTask`),
/// `load` their task vectors (the loader owns them: `run` does not dispose them), merge them with each of
/// `settings.Merges` and `evaluate` each merge (given its label). The merged vectors are disposed after evaluation.
[<CompiledName("Run")>]
let run
    (predict: PromptBatch -> Prediction)
    (load: PoolEntry -> TaskVector)
    (evaluate: string -> TaskVector -> TaskEvaluation)
    (settings: Settings)
    (pool: seq<PoolEntry>)
    (condition: PromptBatch)
    : Outcome =
    let predicted = predict condition

    let pool = Array.ofSeq pool
    let library = pool |> Array.map (fun e -> e, e.Delta)

    let hits =
        if settings.OnePerTask then
            Retrieve.topK settings.Similarity (max 1 library.Length) predicted.Delta library
            |> List.distinctBy (fun h -> h.Item.Task)
            |> List.truncate settings.K
        else
            Retrieve.topK settings.Similarity settings.K predicted.Delta library

    if hits.IsEmpty then
        raise (LlgbmException $"Retrieve-merge for {condition.Task}: the pool holds no teacher adapters.")

    let weights = Retrieve.weights settings.Similarity settings.Weighting hits
    let vectors = hits |> List.map (fun h -> load h.Item)
    let conflicts = Metrics.signConflictRate vectors

    let trimmedConflicts =
        let density = signConflictDensity settings
        let trimmed = vectors |> List.map (Merge.trim density)

        try
            Metrics.signConflictRate trimmed
        finally
            for t in trimmed do
                t.Dispose()

    let results = [
        for merge in settings.Merges ->
            let merge =
                if merge.Weights.Length = 0 then
                    { merge with Weights = weights }
                else
                    merge

            use merged = Merge.merge merge vectors

            {
                Merge = merge
                Evaluation = evaluate (label merge hits weights) merged
            }
    ]

    {
        Condition = condition
        Predicted = predicted
        Retrieved = hits
        Weights = weights
        SignConflicts = conflicts
        TrimmedSignConflicts = trimmedConflicts
        Results = results
    }

/// The task vectors of pool entries for a model of architecture `config`, each loaded once and kept until the cache is
/// disposed; `Load` is the `load` argument of `run`.
[<Sealed>]
type TeacherCache(config: Qwen2Config) =
    let cache = Dictionary<string, TaskVector>(StringComparer.Ordinal)

    /// The task vector of the entry's adapter (loaded on first use).
    member _.Load(entry: PoolEntry) : TaskVector =
        match cache.TryGetValue entry.AdapterDir with
        | true, v -> v
        | _ ->
            let v = TaskVector.load config entry.AdapterDir
            cache[entry.AdapterDir] <- v
            v

    /// The number of adapters loaded.
    member _.Count = cache.Count

    interface IDisposable with
        member _.Dispose() =
            for v in cache.Values do
                v.Dispose()

            cache.Clear()

/// An evaluator of task vectors on `task`: the vector applied densely (`TaskVector.toDenseLora`) to `model` in each
/// forward pass, scored by `TaskEvaluator.Evaluate` with `options`; the label names the adapter in the result.
[<CompiledName("Evaluator")>]
let evaluator
    (model: Qwen2ForCausalLM)
    (tokenizer: ITokenizer)
    (task: TaskData)
    (options: EvaluationOptions)
    : string -> TaskVector -> TaskEvaluation =
    fun name tau ->
        use lora = TaskVector.toDenseLoraOn model.Device torch.float32 tau
        TaskEvaluator.Evaluate(Qwen2EvaluatedModel(model, "base", lora, name), tokenizer, task, options)

/// A retrieve-merge run over several conditions of one task.
type Summary = {
    /// The held-out task.
    Task: string
    /// Each condition's outcome.
    Outcomes: Outcome list
    /// Each merge's accuracy over the conditions, in the order of `Settings.Merges`.
    ByMerge: (Merge.Settings * ConditionedAccuracy) list
}

/// An evaluator that computes each label's evaluation once: the same merge of the same retrieved teachers with the
/// same weights has the same label, so conditions that retrieve the same teachers share one evaluation.
[<CompiledName("Memoise")>]
let memoise (evaluate: string -> TaskVector -> TaskEvaluation) : string -> TaskVector -> TaskEvaluation =
    let seen = Dictionary<string, TaskEvaluation>(StringComparer.Ordinal)

    fun name tau ->
        match seen.TryGetValue name with
        | true, e -> e
        | _ ->
            let e = evaluate name tau
            seen[name] <- e
            e

/// Each merge's accuracy over the outcomes' conditions (`ConditionEvaluator.EvaluateOverConditions`: at least 3
/// distinct conditions, every evaluation of `task`).
[<CompiledName("Summarise")>]
let summarise (task: string) (settings: Settings) (outcomes: seq<Outcome>) : Summary =
    let outcomes = Array.ofSeq outcomes
    let conditions = outcomes |> Array.map (fun o -> o.Condition)
    let byCondition = Dictionary<PromptBatch, Outcome>(HashIdentity.Reference)

    for o in outcomes do
        byCondition[o.Condition] <- o

    let byMerge = [
        for i, merge in Array.indexed settings.Merges ->
            let accuracy =
                ConditionEvaluator.EvaluateOverConditions(
                    task,
                    conditions,
                    Func<PromptBatch, TaskEvaluation>(fun c -> byCondition[c].Results[i].Evaluation)
                )

            merge, accuracy
    ]

    {
        Task = task
        Outcomes = List.ofArray outcomes
        ByMerge = byMerge
    }

/// Runs every condition through `run` (evaluations memoised, see `memoise`) and summarises each merge's accuracy over
/// them (`summarise`).
[<CompiledName("OverConditions")>]
let overConditions
    (predict: PromptBatch -> Prediction)
    (load: PoolEntry -> TaskVector)
    (evaluate: string -> TaskVector -> TaskEvaluation)
    (settings: Settings)
    (pool: seq<PoolEntry>)
    (task: string)
    (conditions: seq<PromptBatch>)
    : Summary =
    let pool = Array.ofSeq pool
    let evaluate = memoise evaluate

    conditions
    |> Seq.map (run predict load evaluate settings pool)
    |> Array.ofSeq
    |> summarise task settings

/// The B2 experiment on run directories: the held-out task, where everything lives, and the choices.
type Experiment = {
    /// The base checkpoint (with its tokenizer).
    BaseDir: string
    /// The task suite's root (one directory per task).
    TasksDir: string
    /// The teacher pool's root (its manifest.json).
    TeachersDir: string
    /// The delta cache (`llgbm deltas compute`).
    DeltasDir: string
    /// The probes the cached deltas were computed with.
    Probes: ProbeSet
    /// The delta spec the cached deltas were computed with.
    Spec: DeltaSpec
    /// The held-out task: its teachers leave the pool and its conditions leave the lookup library.
    Task: string
    /// Other tasks whose teachers leave the pool too (the split's other held-out tasks, so that the pool holds the
    /// training tasks a generator would see).
    Exclude: string[]
    /// Retrieval and merges.
    Settings: Settings
    /// The number of conditions (prompt batches of the held-out task) evaluated, at least 3.
    Conditions: int
    /// The number of examples K in a condition.
    BatchSize: int
    /// Whether conditions carry answers.
    Mode: PromptBatchMode
    /// The number of library conditions per training task.
    LibraryBatches: int
    /// The seed of the conditions and the library.
    Seed: int64
    /// Test examples evaluated per condition (0 for all).
    Limit: int
    /// Where the model runs.
    Device: torch.Device
} with

    /// The experiment on the given base model, suite, teacher pool and delta cache (the generic probes and the
    /// default spec) for the held-out `task`: K = 8 prompts with answers, 3 conditions, 4 library conditions per
    /// training task, seed 0, 100 test examples, on the CPU. `RunsLayout` names the pipeline's folders.
    static member Of(baseDir: string, tasksDir: string, teachersDir: string, deltasDir: string, task: string) = {
        BaseDir = baseDir
        TasksDir = tasksDir
        TeachersDir = teachersDir
        DeltasDir = deltasDir
        Probes = ProbeSet.Generic()
        Spec = DeltaSpec.Default
        Task = task
        Exclude = [||]
        Settings = Settings.Default
        Conditions = 3
        BatchSize = 8
        Mode = PromptBatchMode.PromptsWithAnswers
        LibraryBatches = 4
        Seed = 0L
        Limit = 100
        Device = torch.CPU
    }

/// What `runExperiment` found.
type ExperimentResult = {
    /// The experiment.
    Experiment: Experiment
    /// The pool used (every cached teacher but the held-out task's).
    Pool: PoolEntry[]
    /// The base model without an adapter on the task (bare prompts).
    Base: TaskEvaluation
    /// The mean teacher control: the average of every training task's last kept adapter.
    MeanTeacher: TaskEvaluation
    /// The conditions' outcomes and each merge's accuracy over them.
    Summary: Summary
}

/// Runs the B2 experiment: loads the base model, the suite, the cached deltas (leaving out the held-out task), builds
/// the nearest-condition library of the training tasks (each task's mean delta over its kept adapters, `n-gram`
/// condition embedding), draws `Conditions` prompt batches of the held-out task and runs them through
/// `overConditions`; also evaluates the base model and the mean teacher. `progress` receives a line per step.
[<CompiledName("RunExperiment")>]
let runExperiment (progress: string -> unit) (experiment: Experiment) : ExperimentResult =
    let e = experiment

    let tasks =
        TaskSuite.LoadAll e.TasksDir |> Seq.map (fun t -> t.Spec.Name, t) |> dict

    let heldOut =
        match tasks.TryGetValue e.Task with
        | true, t -> t
        | _ ->
            raise (
                LlgbmException
                    $"{e.TasksDir}: no task {e.Task}; the suite has {Listing.joined (tasks.Keys |> Seq.sort)}."
            )

    progress $"loading the cached deltas from {e.DeltasDir}"

    let pool =
        let loaded = DeltaCache.Load(e.DeltasDir, e.BaseDir, e.Probes, e.Spec)

        try
            poolOf e.TeachersDir loaded
            |> Array.filter (fun p -> p.Task <> e.Task && not (Array.contains p.Task e.Exclude))
        finally
            for d in loaded do
                d.Dispose()

    if pool.Length = 0 then
        raise (LlgbmException $"{e.DeltasDir}: no cached deltas of teachers other than {e.Task}.")

    let trainingTasks =
        pool
        |> Array.groupBy (fun p -> p.Task)
        |> Array.choose (fun (name, entries) ->
            match tasks.TryGetValue name with
            | true, data -> Some(data, Compose.mean (entries |> Array.map (fun p -> p.Delta)))
            | _ -> None)

    progress
        $"pool: {pool.Length} teacher adapters of {trainingTasks.Length} tasks; library: {e.LibraryBatches} conditions per task"

    let library =
        NearestCondition.libraryOfTasks
            NearestCondition.defaultEmbedding
            e.BatchSize
            e.LibraryBatches
            e.Seed
            e.Mode
            trainingTasks

    let predict = nearestConditionPredictor NearestCondition.defaultEmbedding library

    let conditions =
        PromptBatches.SampleMany(heldOut, e.BatchSize, e.Conditions, Seeds.derive e.Seed 1, e.Mode)

    use model =
        LLGBM.Checkpoints.Qwen2Checkpoint.Load(e.BaseDir, e.Device, torch.float32)

    model.eval ()
    let tokenizer = Tokenizers.Load e.BaseDir

    let options =
        EvaluationOptions(Format = PromptFormat.Bare, Limit = (if e.Limit > 0 then Nullable e.Limit else Nullable()))

    let evaluate = evaluator model tokenizer heldOut options
    use cache = new TeacherCache(model.Config)
    let load = cache.Load

    progress $"evaluating the base model on {e.Task}"

    let baseline =
        TaskEvaluator.Evaluate(Qwen2EvaluatedModel(model, "base"), tokenizer, heldOut, options)

    progress "evaluating the mean teacher (the average of every training task's last adapter)"

    let meanTeacher =
        let last =
            pool
            |> Array.groupBy (fun p -> p.Task)
            |> Array.map (fun (_, entries) -> entries |> Array.maxBy (fun p -> p.Step))

        let mutable sum: TaskVector option = None

        for entry in last do
            use v = TaskVector.load model.Config entry.AdapterDir

            sum <-
                match sum with
                | None -> Some(v.Map(fun t -> t.clone ()))
                | Some s ->
                    use s = s
                    Some(s + v)

        use total = sum.Value
        use mean = (1.0 / float last.Length) * total
        evaluate $"mean teacher of {last.Length} tasks" mean

    let evaluate = memoise evaluate

    let outcomes =
        conditions
        |> Seq.mapi (fun i condition ->
            let outcome = run predict load evaluate e.Settings pool condition

            let results =
                outcome.Results
                |> List.map (fun r -> $"{r.Merge.Method.Name} {r.Evaluation.Accuracy:F3}")

            let retrieved = outcome.Retrieved |> List.map (fun h -> string h.Item)

            progress
                $"condition {i + 1}/{conditions.Count}: {outcome.Predicted.Source}; retrieved {Listing.joined (retrieved)}; {Listing.joined (results)}"

            outcome)
        |> Array.ofSeq

    {
        Experiment = e
        Pool = pool
        Base = baseline
        MeanTeacher = meanTeacher
        Summary = summarise e.Task e.Settings outcomes
    }

/// The result as JSON: the task, the base model's and the mean teacher's accuracy, each merge's mean, sample standard
/// deviation and per-condition accuracies, and each condition's prediction source, retrieved teachers (task, step,
/// adapter, score, weight) and accuracies by merge.
[<CompiledName("ToJson")>]
let toJson (result: ExperimentResult) : System.Text.Json.Nodes.JsonObject =
    let e = result.Experiment

    let number (x: float) =
        System.Text.Json.Nodes.JsonValue.Create x :> System.Text.Json.Nodes.JsonNode

    let text (s: string) =
        nonNull (System.Text.Json.Nodes.JsonValue.Create s) :> System.Text.Json.Nodes.JsonNode

    let array (items: seq<System.Text.Json.Nodes.JsonNode>) =
        let a = System.Text.Json.Nodes.JsonArray()

        for item in items do
            a.Add item

        a :> System.Text.Json.Nodes.JsonNode

    let obj (fields: (string * System.Text.Json.Nodes.JsonNode) list) =
        let o = System.Text.Json.Nodes.JsonObject()

        for (k, v) in fields do
            o[k] <- v

        o

    obj [
        "task", text e.Task
        "k", number (float e.Settings.K)
        "one_per_task", System.Text.Json.Nodes.JsonValue.Create e.Settings.OnePerTask :> System.Text.Json.Nodes.JsonNode
        "similarity",
        text (
            if e.Settings.Similarity = Retrieve.Cosine then
                "cosine"
            else
                "l2"
        )
        "weighting",
        text (
            match e.Settings.Weighting with
            | Retrieve.Uniform -> "uniform"
            | Retrieve.Softmax t -> $"softmax (temperature {t})"
        )
        "conditions", number (float e.Conditions)
        "batch_size", number (float e.BatchSize)
        "mode",
        text (
            if e.Mode = PromptBatchMode.PromptsWithAnswers then
                "prompts-with-answers"
            else
                "prompts-only"
        )
        "pool", number (float result.Pool.Length)
        "sign_conflicts", number (result.Summary.Outcomes |> List.averageBy (fun o -> o.SignConflicts))
        "sign_conflicts_trimmed", number (result.Summary.Outcomes |> List.averageBy (fun o -> o.TrimmedSignConflicts))
        "trim_density", number (signConflictDensity e.Settings)
        "base", number result.Base.Accuracy
        "mean_teacher", number result.MeanTeacher.Accuracy
        "merges",
        array [
            for (merge, accuracy) in result.Summary.ByMerge ->
                obj [
                    "merge", text (merge.Describe())
                    "method", text merge.Method.Name
                    "mean", number accuracy.Mean
                    "std", number accuracy.Std
                    "accuracies", array (accuracy.Accuracies |> Seq.map number)
                ]
        ]
        "outcomes",
        array [
            for o in result.Summary.Outcomes ->
                obj [
                    "condition_seed", number (float o.Condition.Seed)
                    "source", text o.Predicted.Source
                    "retrieved",
                    array [
                        for h, w in List.zip o.Retrieved (List.ofArray o.Weights) ->
                            obj [
                                "task", text h.Item.Task
                                "step", number (float h.Item.Step)
                                "adapter", text h.Item.AdapterDir
                                "score", number h.Score
                                "weight", number w
                            ]
                    ]
                    "sign_conflicts", number o.SignConflicts
                    "sign_conflicts_trimmed", number o.TrimmedSignConflicts
                    "accuracy", obj [ for r in o.Results -> r.Merge.Method.Name, number r.Evaluation.Accuracy ]
                ]
        ]
    ]

type Experiment with

    /// Runs the experiment (`runExperiment`), reporting progress lines to `progress` (may be null).
    member this.Run(progress: Action<string> | null) =
        runExperiment
            (fun line ->
                match progress with
                | null -> ()
                | p -> p.Invoke line)
            this
