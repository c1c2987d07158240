/// Two neighbourhood checks of an adapter embedding, beside the silhouette of `DeltaQuality`: whether an adapter's
/// nearest neighbour among other tasks' adapters shares its domain (leave-one-task-out 1-NN), and whether an embedding
/// of a generated adapter is nearer its own task's teacher than the other tasks' teachers.
module LLGBM.Algebra.DeltaNeighbours

open DeltaQuality

/// The leave-one-task-out 1-NN check of a set of embedded adapters.
type NeighbourCheck = {
    /// The number of adapters checked.
    Points: int
    /// Those whose nearest adapter of another task (cosine) is of their domain.
    Correct: int
    /// `Correct / Points`.
    Accuracy: float
}

/// For every adapter, its nearest neighbour by cosine similarity among the adapters of the other tasks (its own task's
/// other checkpoints left out, so a task cannot find itself); counts the adapters whose neighbour has their domain.
/// Ties go to the first neighbour in order. Needs adapters of at least two tasks.
let leaveOneTaskOut (points: EmbeddedAdapter[]) : NeighbourCheck =
    if (points |> Array.map _.Task |> Array.distinct).Length < 2 then
        raise (
            LLGBM.LlgbmException(
                $"Leave-one-task-out 1-NN: needs adapters of at least 2 tasks, found {points.Length} adapters."
            )
        )

    let distances = Clustering.cosineDistanceMatrix (points |> Array.map _.Vector)

    let correct =
        points
        |> Array.mapi (fun i p ->
            let mutable best = -1
            let mutable bestDistance = infinity

            for j in 0 .. points.Length - 1 do
                if points[j].Task <> p.Task && distances[i, j] < bestDistance then
                    best <- j
                    bestDistance <- distances[i, j]

            points[best].Domain = p.Domain)
        |> Array.filter id
        |> Array.length

    {
        Points = points.Length
        Correct = correct
        Accuracy = float correct / float points.Length
    }

/// How one generated adapter's embedding relates to the teachers' embeddings.
type TeacherMatch = {
    /// The task the adapter was generated for.
    Task: string
    /// Cosine similarity to its own task's teacher.
    Own: float
    /// Mean cosine similarity to the other tasks' teachers.
    Other: float
    /// Rank of its own teacher among all teachers by cosine similarity (1: the most similar; ties count against it).
    Rank: int
}

/// The match of `vector` (generated for `task`) against `teachers` (task → embedding; must hold `task` and another).
let teacherMatch (teachers: (string * float32[])[]) (task: string) (vector: float32[]) : TeacherMatch =
    let own =
        match teachers |> Array.tryFind (fun (t, _) -> t = task) with
        | Some(_, v) -> Metrics.cosine vector v
        | None -> raise (LLGBM.LlgbmException($"Teacher match: no teacher embedding of task {task}."))

    let others =
        teachers
        |> Array.filter (fun (t, _) -> t <> task)
        |> Array.map (fun (_, v) -> Metrics.cosine vector v)

    if others.Length = 0 then
        raise (LLGBM.LlgbmException("Teacher match: needs the teachers of at least 2 tasks."))

    {
        Task = task
        Own = own
        Other = Array.average others
        Rank = 1 + (others |> Array.filter (fun c -> c >= own) |> Array.length)
    }

/// The summary of several teacher matches.
type TeacherMatchSummary = {
    /// The number of generated adapters.
    Points: int
    /// Mean cosine to the own task's teacher.
    Own: float
    /// Mean of the mean cosine to the other tasks' teachers.
    Other: float
    /// `Own − Other`.
    Margin: float
    /// Share of adapters whose own teacher is the most similar (rank 1).
    Top1: float
    /// Mean rank of the own teacher.
    MeanRank: float
}

/// The summary of `matches` (at least one).
let summarize (matches: TeacherMatch[]) : TeacherMatchSummary =
    if matches.Length = 0 then
        raise (LLGBM.LlgbmException("Teacher match summary: no matches."))

    let own = matches |> Array.averageBy _.Own
    let other = matches |> Array.averageBy _.Other

    {
        Points = matches.Length
        Own = own
        Other = other
        Margin = own - other
        Top1 =
            float (matches |> Array.filter (fun m -> m.Rank = 1) |> Array.length)
            / float matches.Length
        MeanRank = matches |> Array.averageBy (fun m -> float m.Rank)
    }
