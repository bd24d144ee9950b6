"""course_pkg: the reference backpropagation package of the course.

Every chapter and assignment imports this package. The modules follow the concepts of the
matrix-form theorem of ``002_ff83eee082f91d18.txt``:

``backend``       which array library runs the arithmetic (NumPy, CuPy, any Array API namespace)
``activations``   each activation S with its derivative S'
``losses``        each cost C with dC/dg and the output error delta_L of matched pairs
``network``       Algorithm 1 (feed-forward and back-propagation) and Algorithm 2 (batch mean)
``gradcheck``     central finite differences, the independent oracle
``train``         mini-batch stochastic gradient descent
``data``          the digits data set and the toy targets of Bishop's figure 5.3

and the small models of the other seeds, in their own notation: ``identity_sigmoid``
(``000_4a3fe56ce2bc8b6e.txt``), ``tanh_two_layer`` (``001_ce18104b0c2237dd.txt``) and
``node_delta`` (``003_00675a7c1b711b2c.txt``).
"""

from course_pkg import activations, losses
from course_pkg.backend import BackendUnavailableError, get_namespace, to_numpy
from course_pkg.data import bishop_targets, load_digits_split
from course_pkg.gradcheck import finite_difference_gradients, gradient_check
from course_pkg.network import Network, back_propagate, feed_forward
from course_pkg.train import History, accuracy, train

__all__ = [
    "BackendUnavailableError",
    "History",
    "Network",
    "accuracy",
    "activations",
    "back_propagate",
    "bishop_targets",
    "feed_forward",
    "finite_difference_gradients",
    "get_namespace",
    "gradient_check",
    "load_digits_split",
    "losses",
    "to_numpy",
    "train",
]

__version__ = "0.1.0"
