"""Multinomial logistic regression with an L2 penalty, fitted by L-BFGS in NumPy (no SciPy: it is not
a dependency of the project)."""
import numpy as np


def softmax_regression(inputs, labels, classes, decay, tolerance=1e-6, most=1000, memory=10):
    """(kernel (D, C), bias (C,), {"loss": per iteration, "iterations": n}) minimising
    mean cross-entropy + decay * |kernel|^2 (the bias is not decayed)."""
    inputs = np.asarray(inputs, np.float64)
    n, d = inputs.shape
    onehot = np.eye(classes)[labels]

    def loss_and_gradient(theta):
        kernel, bias = theta[:d * classes].reshape(d, classes), theta[d * classes:]
        logits = inputs @ kernel + bias
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(onehot * log_probs).sum() / n + decay * (kernel * kernel).sum()
        error = (np.exp(log_probs) - onehot) / n
        gradient = np.concatenate([(inputs.T @ error + 2 * decay * kernel).ravel(), error.sum(axis=0)])
        return loss, gradient

    theta, history = lbfgs(loss_and_gradient, np.zeros(d * classes + classes), tolerance, most, memory)
    return theta[:d * classes].reshape(d, classes), theta[d * classes:], history


def lbfgs(function, x, tolerance, most, memory):
    value, gradient = function(x)
    steps, changes, losses = [], [], [value]
    for _ in range(most):
        if np.abs(gradient).max() < tolerance:
            break
        direction = -_two_loop(gradient, steps, changes)
        slope = gradient @ direction
        if slope >= 0:  # not a descent direction: start again from the gradient
            steps, changes = [], []
            direction, slope = -gradient, -(gradient @ gradient)
        size = 1.0
        while True:
            candidate = x + size * direction
            new_value, new_gradient = function(candidate)
            if new_value <= value + 1e-4 * size * slope or size < 1e-12:
                break
            size /= 2
        step, change = candidate - x, new_gradient - gradient
        if step @ change > 1e-12:
            steps, changes = (steps + [step])[-memory:], (changes + [change])[-memory:]
        converged = value - new_value <= tolerance * max(1.0, abs(value))
        x, value, gradient = candidate, new_value, new_gradient
        losses.append(value)
        if converged:
            break
    return x, {"loss": losses, "iterations": len(losses) - 1}


def _two_loop(gradient, steps, changes):
    """The L-BFGS estimate of the inverse Hessian times `gradient`."""
    q, factors = gradient.copy(), []
    for step, change in zip(reversed(steps), reversed(changes)):
        rho = 1.0 / (change @ step)
        alpha = rho * (step @ q)
        q -= alpha * change
        factors.append((rho, alpha))
    if steps:
        q *= (steps[-1] @ changes[-1]) / (changes[-1] @ changes[-1])
    for (step, change), (rho, alpha) in zip(zip(steps, changes), reversed(factors)):
        q += step * (alpha - rho * (change @ q))
    return q
