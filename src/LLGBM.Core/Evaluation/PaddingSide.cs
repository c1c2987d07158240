namespace LLGBM.Evaluation;

/// <summary>Where padding goes when sequences of unequal length share a batch; the attention mask hides it either way.</summary>
public enum PaddingSide
{
    /// <summary>Padding after each sequence.</summary>
    Right,

    /// <summary>Padding before each sequence.</summary>
    Left,
}
