/// The B2 baseline, retrieve and merge: for a condition (a prompt batch of a held-out task), predict its delta δ̂,
/// retrieve the k teacher adapters whose deltas are nearest to δ̂ (`Retrieve`), merge them on ΔW (average or TIES,
/// `Merge`) and evaluate the merged adapter, applied densely, on the task. Retrieval by behavioural embedding follows
/// Delta Activations (arXiv 2509.04442); retrieve-then-compose follows LoraRetriever (Zhao et al., ACL
/// Findings 2024); the merges are those of `Merge`. Every step is a function argument (`run`), so the prompts → δ̂
/// network of the generator replaces the nearest-condition lookup (`NearestCondition`) without other changes.
/// `LLGBM.Experiments.RetrieveMergeExperiment` wires the steps to run directories, a model and its tokenizer.
module LLGBM.Algebra.RetrieveMerge

open System
open System.Collections.Generic
open System.IO
open TorchSharp
open LLGBM
open LLGBM.Delta
open LLGBM.Evaluation
open LLGBM.Tasks

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
