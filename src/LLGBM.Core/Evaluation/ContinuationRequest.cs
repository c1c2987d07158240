namespace LLGBM.Evaluation;

/// <summary>A continuation to score given its context, both as token ids; neither may be empty.</summary>
public sealed record ContinuationRequest(IReadOnlyList<int> Context, IReadOnlyList<int> Continuation);
