namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>
/// How MF reads a row's liked history (<see cref="Data.Interaction.History"/>) into the user embedding. The history estimate of a
/// row is <c>mean(item embeddings of its liked items) · W</c>, where the map W ([k, k], ridge regression) is fitted once after
/// training so that it carries each training user's mean liked-item embedding onto that user's own embedding.
/// </summary>
public enum UserHistory
{
    /// <summary>The history is not read: a user unseen in training gets the zero vector (MF as CoLLM and CoRA train it).</summary>
    None,
    /// <summary>A user unseen in training gets the history estimate (zero when the row has no known liked item); a known user keeps
    /// their own embedding.</summary>
    Cold,
    /// <summary>As <see cref="Cold"/>, and a known user's embedding is the mean of their own and the history estimate, so that likes
    /// newer than the training rows count too.</summary>
    Blend,
}
