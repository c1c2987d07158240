namespace LLGBM.Tasks;

/// <summary>How a task is answered and scored.</summary>
public enum TaskKind
{
    /// <summary>The model writes the answer; scored by exact match after answer extraction.</summary>
    Generation,

    /// <summary>The model picks one of the listed choices; scored by the log-likelihood of each choice.</summary>
    MultipleChoice,
}
