/// The nearest-condition lookup: a δ̂ predictor that needs no training. It keeps a library of conditions (prompt
/// batches of the training tasks) paired with their tasks' deltas, and predicts for a new condition the delta of the
/// library condition nearest to it in a condition embedding — a nearest-neighbour regressor (Cover and Hart, "Nearest
/// neighbor pattern classification", IEEE Trans. Inf. Theory 1967) standing where the two-stage prompts → δ̂ network
/// of the generator will stand. A predictor is just a function `PromptBatch -> float32[]`, so that network plugs into
/// `RetrieveMerge` the same way.
///
/// The condition embedding is a function argument too. `ngrams` is a stand-in that needs no model: hashed character
/// n-gram counts of the batch's texts (Weinberger et al., "Feature hashing for large scale multitask learning", ICML
/// 2009); a sentence encoder's mean embedding of the K texts plugs in the same way.
module LLGBM.Algebra.NearestCondition

open System
open LLGBM
open LLGBM.Tasks

/// The texts of a condition: each item's prompt, followed by a newline and its answer when the batch carries answers.
[<CompiledName("Texts")>]
let texts (batch: PromptBatch) : string[] = [|
    for item in batch.Items ->
        match item.Answer with
        | null -> item.Prompt
        | answer -> item.Prompt + "\n" + answer
|]

/// 32-bit FNV-1a of a string's UTF-16 code units (stable across processes, unlike String.GetHashCode).
let private fnv1a (text: string) (start: int) (length: int) : uint32 =
    let mutable hash = 2166136261u

    for i in start .. start + length - 1 do
        let c = uint32 text[i]
        hash <- (hash ^^^ (c &&& 0xFFu)) * 16777619u
        hash <- (hash ^^^ (c >>> 8)) * 16777619u

    hash

/// The hashed character n-gram embedding of a condition: for n = 1 … `maxN`, every n-gram of every text (see `texts`)
/// adds 1 to bucket FNV-1a(n-gram) mod `dimension`; the counts are then scaled to unit length (a zero vector for a
/// condition without characters). Deterministic; no model.
[<CompiledName("Ngrams")>]
let ngrams (dimension: int) (maxN: int) (batch: PromptBatch) : float32[] =
    if dimension < 1 || maxN < 1 then
        raise (
            LlgbmException
                $"N-gram condition embedding: the dimension and the n-gram length must be at least 1, found {dimension} and {maxN}."
        )

    let counts = Array.zeroCreate<float> dimension

    for text in texts batch do
        for n in 1..maxN do
            for start in 0 .. text.Length - n do
                let bucket = int (fnv1a text start n % uint32 dimension)
                counts[bucket] <- counts[bucket] + 1.0

    let norm = counts |> Array.sumBy (fun c -> c * c) |> sqrt
    counts |> Array.map (fun c -> if norm = 0.0 then 0.0f else float32 (c / norm))

/// The default condition embedding: `ngrams 1024 3`.
[<CompiledName("DefaultEmbedding")>]
let defaultEmbedding (batch: PromptBatch) : float32[] = ngrams 1024 3 batch

/// A library of conditions with their embeddings and their target deltas.
type Library = {
    /// The conditions (prompt batches).
    Conditions: PromptBatch[]
    /// Their embeddings.
    Embeddings: float32[][]
    /// The delta each condition stands for (its task's delta).
    Deltas: float32[][]
}

/// The library of the (condition, delta) pairs under the embedding `embed`.
[<CompiledName("Library")>]
let library (embed: PromptBatch -> float32[]) (pairs: seq<PromptBatch * float32[]>) : Library =
    let pairs = Array.ofSeq pairs

    if pairs.Length = 0 then
        raise (LlgbmException "Nearest-condition lookup: the library holds no conditions.")

    {
        Conditions = pairs |> Array.map fst
        Embeddings = pairs |> Array.map (fst >> embed)
        Deltas = pairs |> Array.map snd
    }

/// The library of `batches` prompt batches of `k` examples for each (task, delta) pair, drawn with
/// `PromptBatches.SampleMany` (seed `seed`, in `mode`), each paired with its task's delta.
[<CompiledName("LibraryOfTasks")>]
let libraryOfTasks
    (embed: PromptBatch -> float32[])
    (k: int)
    (batches: int)
    (seed: int64)
    (mode: PromptBatchMode)
    (tasks: seq<TaskData * float32[]>)
    : Library =
    library embed [
        for (task, delta) in tasks do
            for batch in PromptBatches.SampleMany(task, k, batches, seed, mode) -> batch, delta
    ]

/// The library condition nearest to `query` by cosine similarity of the embeddings (the first one among equals),
/// with that similarity.
[<CompiledName("Nearest")>]
let nearest (embed: PromptBatch -> float32[]) (library: Library) (query: PromptBatch) : Retrieve.Hit<PromptBatch> =
    let q = embed query

    let hit =
        Retrieve.byCosine 1 q (Array.zip library.Conditions library.Embeddings)
        |> List.head

    hit

/// The nearest-condition δ̂ predictor: the delta of the library condition nearest to the query (see `nearest`).
[<CompiledName("Predictor")>]
let predictor (embed: PromptBatch -> float32[]) (library: Library) : PromptBatch -> float32[] =
    fun query -> library.Deltas[(nearest embed library query).Index]
