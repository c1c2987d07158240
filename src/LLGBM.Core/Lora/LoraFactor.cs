namespace LLGBM.Lora;

/// <summary>Which factor of a LoRA module a block of LoRA tokens holds.</summary>
public enum LoraFactor
{
    /// <summary>The down projection A [r, in]: its rows are the rank rows, its features the input features.</summary>
    A,

    /// <summary>The up projection transposed, Bᵀ [r, out]: its rows are the rank rows, its features the output features.</summary>
    BTransposed,
}
